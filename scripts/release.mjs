#!/usr/bin/env node
// Publishes the workspace's packages with changesets: builds everything, checks that what would be published
// is complete (the runtime's prebuilt helpers for x64 and arm64, the CLI's bundles, man pages and
// completions), then `changeset publish` (each public package whose version is not on the registry yet,
// with a git tag per package).
//   pnpm release              publish (run `pnpm version-packages` and commit first)
//   pnpm release --dry-run    show what would be published: the pending changesets, then each package,
//                             version, dependencies and tarball contents (packed as pnpm publish packs,
//                             without the registry); publishes nothing
//   --skip-build              use what is built
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const dryRun = args.includes('--dry-run');
const run = (cmd, argv, cwd = root) => execFileSync(cmd, argv, { cwd, stdio: 'inherit' });

/** Public workspace packages (packages/*, apps/*), found from their package.json. */
function publicPackages() {
  const out = [];
  for (const group of ['packages', 'apps']) {
    const base = join(root, group);
    if (!existsSync(base)) continue;
    for (const d of readdirSync(base).sort()) {
      const f = join(base, d, 'package.json');
      if (!existsSync(f)) continue;
      const pkg = JSON.parse(readFileSync(f, 'utf8'));
      if (!pkg.private) out.push({ dir: join(base, d), name: pkg.name, version: pkg.version, pkg });
    }
  }
  return out;
}

/** What must be in the build before anything is published. */
function checkComplete(pkgs) {
  const missing = [];
  for (const p of pkgs) {
    if (p.name === '@nspawn/runtime')
      for (const a of ['x64', 'arm64'])
        if (!existsSync(join(p.dir, `native/prebuilt/nspawn-helper-linux-${a}`))) missing.push(`${p.name}: native/prebuilt/nspawn-helper-linux-${a} (install clang and libc6-dev-arm64-cross, then pnpm build)`);
    for (const m of p.pkg.man ?? []) if (!existsSync(join(p.dir, m))) missing.push(`${p.name}: man page ${m}`);
    for (const b of Object.values(typeof p.pkg.bin === 'string' ? { x: p.pkg.bin } : (p.pkg.bin ?? {})))
      if (!existsSync(join(p.dir, b))) missing.push(`${p.name}: bin ${b}`);
    const main = p.pkg.exports?.['.']?.default;
    if (main && !existsSync(join(p.dir, main))) missing.push(`${p.name}: ${main} (not built)`);
  }
  if (missing.length) {
    console.error(`release: not complete, refusing:\n  ${missing.join('\n  ')}`);
    process.exit(1);
  }
}

if (!args.includes('--skip-build')) run('pnpm', ['run', '-s', 'build']);
const pkgs = publicPackages();
checkComplete(pkgs);

if (!dryRun) {
  run(join(root, 'node_modules/.bin/changeset'), ['publish', ...args.filter((a) => a !== '--skip-build')]);
  process.exit(0);
}

console.log('release --dry-run: pending changesets (pnpm version-packages would apply them):');
spawnSync(join(root, 'node_modules/.bin/changeset'), ['status', '--verbose'], { cwd: root, stdio: 'inherit' });
console.log('\nrelease --dry-run: what `pnpm release` would publish now (packed as `pnpm publish` packs, offline):');
const summary = [];
const tmp = mkdtempSync(join(tmpdir(), 'nspawn-release-dry-'));
try {
  for (const p of pkgs) {
    const r = spawnSync('pnpm', ['pack', '--pack-destination', tmp], { cwd: p.dir, encoding: 'utf8' });
    const tgz = join(tmp, `${p.name.replace(/^@/, '').replace('/', '-')}-${p.version}.tgz`);
    if (r.status !== 0 || !existsSync(tgz)) {
      console.error(`release --dry-run: ${p.name}: pnpm pack failed:\n${r.stdout}${r.stderr}`);
      process.exit(1);
    }
    const manifest = JSON.parse(execFileSync('tar', ['-xOzf', tgz, 'package/package.json'], { encoding: 'utf8' }));
    const files = execFileSync('tar', ['-tvzf', tgz], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map((l) => l.trim().split(/\s+/))
      .map((f) => `    ${f.slice(5).join(' ').replace(/^package\//, '')} (${f[2]} B)`);
    const deps = Object.entries(manifest.dependencies ?? {}).map(([n, v]) => `${n}@${v}`);
    console.log(`\n${p.name}@${manifest.version} (${statSync(tgz).size} B packed, ${files.length} files${deps.length ? `; depends on ${deps.join(', ')}` : ''})\n${files.join('\n')}`);
    summary.push(`${p.name}@${manifest.version}`);
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
console.log(`\nrelease --dry-run: would publish, of ${summary.join(', ')}, each version not on the registry yet; nothing was published.`);
