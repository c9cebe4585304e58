// Releases: the changesets flow end to end in a copy of the workspace (versions, changelogs, internal
// ranges as published), and `pnpm release --dry-run` showing what would be published without publishing.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { libraries, ROOT, tarballManifest, workspacePackages } from '../lib/workspace.mjs';

let copy = '';
const json = (f: string) => JSON.parse(readFileSync(f, 'utf8'));

// (execa, async: a child that blocks the test worker for a minute makes vitest's RPC time out on a busy machine)
beforeAll(async () => {
  copy = mkdtempSync(join(tmpdir(), 'nspawn-test-release-'));
  // the workspace as committed plus what is not ignored, without node_modules and builds
  await execa('bash', ['-c', `git ls-files -z -co --exclude-standard | tar --null -T - -cf - | tar -xf - -C '${copy}'`], { cwd: ROOT });
  await execa('pnpm', ['install', '--offline', '--ignore-scripts', '--config.confirmModulesPurge=false'], { cwd: copy, stdin: 'ignore' });
});
afterAll(() => {
  if (copy) rmSync(copy, { recursive: true, force: true });
});

describe('changesets config', () => {
  it('bumps dependents when an internal dependency changes, and leaves private packages alone', () => {
    const c = json(join(ROOT, '.changeset/config.json'));
    expect(c.updateInternalDependencies).toBe('patch');
    expect(c.access).toBe('public');
    expect(c.baseBranch).toBe('main');
    expect(c.privatePackages).toEqual({ version: false, tag: false });
  });
  it('every pending changeset names only workspace packages', () => {
    const names = new Set([...workspacePackages('packages'), ...workspacePackages('apps')].map((p) => p.name));
    for (const f of readdirSync(join(ROOT, '.changeset')).filter((f) => f.endsWith('.md') && f !== 'README.md')) {
      const head = /^---\n([\s\S]*?)\n---/.exec(readFileSync(join(ROOT, '.changeset', f), 'utf8'));
      expect(head, f).not.toBeNull();
      for (const m of head![1]!.matchAll(/^["']?([^"':]+)["']?:\s*(major|minor|patch)\s*$/gm)) expect(names.has(m[1]!), `${f}: ${m[1]}`).toBe(true);
    }
  });
});

describe('pnpm version-packages in a copy of the workspace', () => {
  const settingsDir = () => join(copy, 'packages/settings');
  const dependents = () => libraries(copy).filter((l) => l.pkg.dependencies?.['@nspawn/settings']);
  const before = new Map<string, string>();

  beforeAll(async () => {
    for (const p of [...workspacePackages('packages', copy), ...workspacePackages('apps', copy), ...workspacePackages('tools', copy)]) before.set(p.name, p.version);
    for (const f of readdirSync(join(copy, '.changeset'))) if (f.endsWith('.md') && f !== 'README.md') rmSync(join(copy, '.changeset', f));
    writeFileSync(join(copy, '.changeset/test-parser-option.md'), '---\n"@nspawn/settings": minor\n---\n\nTest: a new parser option.\n');
    await execa('pnpm', ['run', '-s', 'version-packages'], { cwd: copy, stdin: 'ignore' });
  });

  it('bumps the package and writes its changelog', () => {
    const v = json(join(settingsDir(), 'package.json')).version;
    const [maj, min] = before.get('@nspawn/settings')!.split('.').map(Number);
    expect(v).toBe(maj === 0 ? `0.${min! + 1}.0` : `${maj}.${min! + 1}.0`);
    const log = readFileSync(join(settingsDir(), 'CHANGELOG.md'), 'utf8');
    expect(log).toContain(`## ${v}`);
    expect(log).toMatch(/### Minor Changes\s+- Test: a new parser option\./);
    expect(readdirSync(join(copy, '.changeset')).filter((f) => f.endsWith('.md') && f !== 'README.md')).toEqual([]);
  });

  it('gives every library that depends on it a patch release naming the new version', () => {
    const v = json(join(settingsDir(), 'package.json')).version;
    expect(dependents().length).toBeGreaterThan(0);
    for (const d of dependents()) {
      const [maj, min, pat] = before.get(d.name)!.split('.').map(Number);
      expect(d.version, d.name).toBe(`${maj}.${min}.${pat! + 1}`);
      expect(readFileSync(join(d.dir, 'CHANGELOG.md'), 'utf8')).toContain(`@nspawn/settings@${v}`);
    }
  });

  it('publishes internal ranges that point at the new versions', async () => {
    const v = json(join(settingsDir(), 'package.json')).version;
    for (const d of dependents()) {
      const range = d.pkg.dependencies['@nspawn/settings'];
      expect(range, d.name).toMatch(/^workspace:/);
      await execa('pnpm', ['pack', '--pack-destination', copy], { cwd: d.dir, stdin: 'ignore' });
      const tgz = join(copy, `${d.name.replace('@', '').replace('/', '-')}-${d.version}.tgz`);
      const m = tarballManifest(tgz);
      expect(m.version).toBe(d.version);
      expect(m.dependencies['@nspawn/settings'], d.name).toMatch(new RegExp(`^[\\^~]?${v.replace(/\./g, '\\.')}$`));
    }
  });

  it('leaves the private packages alone', () => {
    for (const p of workspacePackages('tools', copy)) {
      expect(p.version).toBe(before.get(p.name));
      expect(existsSync(join(p.dir, 'CHANGELOG.md'))).toBe(false);
    }
  });
});

describe('pnpm release --dry-run', () => {
  it('lists every public package with its version and tarball contents, and publishes nothing', async () => {
    const r = await execa('pnpm', ['run', '-s', 'release', '--dry-run', '--skip-build'], { cwd: ROOT, reject: false, stdin: 'ignore' });
    expect(r.exitCode, r.stderr).toBe(0);
    const pub = [...workspacePackages('packages'), ...workspacePackages('apps')].filter((p) => !p.pkg.private);
    for (const p of pub) expect(r.stdout).toMatch(new RegExp(`^${p.name}@${p.version.replace(/\./g, '\\.')} \\(`, 'm'));
    expect(r.stdout).toContain('native/prebuilt/nspawn-helper-linux-arm64');
    expect(r.stdout).toContain('dist/man/nspawn.1');
    expect(r.stdout).toMatch(/nothing was published\.$/m);
  });
});
