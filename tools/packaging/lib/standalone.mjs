#!/usr/bin/env node
// Each library installs alone from its packed tarball into a fresh project outside the workspace, on a
// PATH without a C compiler, and its README example runs there.
//   node tools/packaging/lib/standalone.mjs [NAME...]      (default: every library in packages/*)
// Prints one line per library; exits 1 when one fails. Needs the workspace built (pnpm build).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { readmeExample } from './readme-example.mjs';
import { freshProject, libraries, noCompilerEnv, packAll, ROOT } from './workspace.mjs';

/**
 * Packs every library into `work`/tarballs, then for `lib`: a fresh project in `work`/NAME installed with
 * the no-compiler env, the README's setup block, and its example. Returns { project, output }; throws with
 * the step and its output on failure. (Async: npm install and the examples take long, see workspace.mjs.)
 */
export async function checkLibrary(lib, tarballs, work, env) {
  const readme = readFileSync(join(lib.dir, 'README.md'), 'utf8');
  const ex = readmeExample(readme);
  if (!ex) throw new Error(`${lib.name}: README.md has no example (a \`\`\`ts example block)`);
  const project = join(work, lib.name.replace(/[@/]/g, '_'));
  try {
    await freshProject(project, lib.name, tarballs, { env });
  } catch (e) {
    throw new Error(`${lib.name}: npm install of its tarball failed:\n${e.stderr ?? e.message}`);
  }
  const run = async (cmd, args, what) => {
    const r = await execa(cmd, args, { cwd: project, env: { ...env, REPO: ROOT }, extendEnv: false, stdin: 'ignore', timeout: 180000, stripFinalNewline: false, reject: false });
    if (r.exitCode !== 0) throw new Error(`${lib.name}: ${what} failed (${r.exitCode ?? r.signal ?? r.code}):\n${r.stdout ?? ''}${r.stderr || r.shortMessage}`);
    return r.stdout;
  };
  if (ex.setup) {
    writeFileSync(join(project, 'example-setup.sh'), ex.setup);
    await run('bash', ['-e', 'example-setup.sh'], 'the README example-setup block');
  }
  const file = `example.${ex.lang}`;
  writeFileSync(join(project, file), ex.code);
  const output = await run('node', [file], `the README example (${file})`);
  return { project, output };
}

/** Packs the libraries into a temp dir and checks the named ones (all by default). */
export async function checkAll(names = []) {
  const libs = libraries();
  const work = mkdtempSync(join(tmpdir(), 'nspawn-standalone-'));
  const results = [];
  try {
    const tarballs = packAll(libs, join(work, 'tarballs'));
    const env = noCompilerEnv(join(work, 'bin'));
    for (const lib of libs.filter((l) => names.length === 0 || names.includes(l.name))) {
      try {
        await checkLibrary(lib, tarballs, work, env);
        results.push({ name: lib.name, ok: true });
      } catch (e) {
        results.push({ name: lib.name, ok: false, error: e.message });
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return results;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const results = await checkAll(process.argv.slice(2));
  for (const r of results) console.log(r.ok ? `ok    ${r.name}` : `FAIL  ${r.name}\n${r.error}`);
  process.exitCode = results.every((r) => r.ok) ? 0 : 1;
}
