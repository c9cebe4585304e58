#!/usr/bin/env node
// Typed API documentation of the libraries with typedoc (pinned in the root package.json), one site per
// library in docs/api/NAME/ (gitignored), from its src/index.ts and README.md.
//   node scripts/docs.mjs              every library in packages/* (found, not listed)
//   node scripts/docs.mjs packages/net one library (each package's `pnpm run docs` does this)
// Fails (exit 1) when typedoc reports an error for any of them (warnings, such as a seccomp group's
// "@name" in a comment read as a block tag, are printed).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const typedoc = join(root, 'node_modules/.bin/typedoc');

/** typedoc for one package dir; resolves to { name, out, ok, log }. (Async: typedoc takes a minute on a busy machine.) */
export async function buildDocs(dir, outRoot = join(root, 'docs/api')) {
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  const out = join(outRoot, basename(dir));
  const args = [
    '--entryPoints', join(dir, 'src/index.ts'),
    '--tsconfig', join(dir, 'tsconfig.json'),
    '--readme', join(dir, 'README.md'),
    '--name', pkg.name,
    '--out', out,
    '--excludePrivate', '--excludeInternal',
    '--skipErrorChecking', // pnpm typecheck does that
    '--validation.notExported', 'false',
    '--validation.invalidLink', 'false',
    '--logLevel', 'Warn',
  ];
  const r = await execa(typedoc, args, { cwd: dir, reject: false, stdin: 'ignore' });
  return { name: pkg.name, out, ok: r.exitCode === 0 && existsSync(join(out, 'index.html')), log: `${r.stdout}${r.stderr}${r.exitCode === undefined ? r.shortMessage : ''}` };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dirs = process.argv.length > 2
    ? process.argv.slice(2).map((d) => resolve(d))
    : readdirSync(join(root, 'packages')).map((d) => join(root, 'packages', d)).filter((d) => existsSync(join(d, 'src/index.ts')));
  let failed = false;
  for (const d of dirs) {
    const r = await buildDocs(d);
    console.log(r.ok ? `docs: ${r.name} -> ${r.out}` : `docs: ${r.name} FAILED\n${r.log}`);
    failed ||= !r.ok;
  }
  process.exitCode = failed ? 1 : 0;
}
