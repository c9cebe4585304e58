// The bundled CLI for end users: `npm install -g` of apps/cli's packed tarball, on a machine path with no C
// compiler, brings nspawn (and nspawnctl, nspawnd: every command whose source the workspace has), its man
// pages and its shell completions, and runs a real container.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { noCompilerEnv, packAll, ROOT, tarballFiles, tarballManifest, workspacePackages } from '../lib/workspace.mjs';

const cli = workspacePackages('apps').find((p) => p.name === '@nspawn/cli')!;
let work = '';
let prefix = '';
let tgz = '';
let env: NodeJS.ProcessEnv;

/** The commands the workspace has sources for (what apps/cli/scripts/bundle.mjs bundles). */
function commands(): string[] {
  const out = ['nspawn'];
  if (existsSync(join(cli.dir, 'src/nspawnctl.ts'))) out.push('nspawnctl');
  if (['nspawnd.ts', 'main.ts', 'cli.ts'].some((f) => existsSync(join(ROOT, 'apps/daemon/src', f)))) out.push('nspawnd');
  return out;
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'nspawn-test-global-'));
  tgz = packAll([cli], join(work, 'tarballs')).get('@nspawn/cli')!;
  // (the installed nspawn's code cache in the work directory: a prefix made per run would leave one each in /var/cache)
  env = { ...noCompilerEnv(join(work, 'nocc')), NSPAWN_CODE_CACHE: join(work, 'code-cache') };
  prefix = join(work, 'prefix');
  execFileSync('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', tgz], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
});
afterAll(() => {
  const left = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => work && l.includes(work));
  if (work) rmSync(work, { recursive: true, force: true });
  expect(left).toEqual([]);
});

describe('the global package', () => {
  it('is self-contained: our libraries bundled (only third-party native modules left to npm), no workspace ranges', () => {
    const m = tarballManifest(tgz);
    expect(Object.keys(m.dependencies ?? {}).filter((d) => d.startsWith('@nspawn/'))).toEqual([]);
    expect(JSON.stringify(m)).not.toMatch(/workspace:/);
    const files = tarballFiles(tgz);
    expect(files).toEqual(
      expect.arrayContaining(['bin/nspawn', 'bin/load.cjs', 'dist/nspawn.cjs', 'dist/nspawn-helper-linux-x64', 'dist/nspawn-helper-linux-arm64', 'dist/nspawn-sys-linux-x64.node', 'dist/nspawn-sys-linux-arm64.node']),
    );
    expect(files.filter((f) => f.endsWith('.ts') || f.startsWith('src/') || f.startsWith('test/'))).toEqual([]);
  });

  it('has a bin for every command the workspace builds (nspawn, nspawnctl, nspawnd)', () => {
    expect(Object.keys(cli.pkg.bin).sort()).toEqual(commands().sort());
  });

  it('nspawn --version and --help run from the prefix', () => {
    const v = spawnSync(join(prefix, 'bin/nspawn'), ['--version'], { encoding: 'utf8', env });
    expect(v.status).toBe(0);
    expect(v.stdout).toMatch(new RegExp(`^nspawn ${cli.version.replace(/\./g, '\\.')} `)); // the package's version, bumped by changesets
    const h = spawnSync(join(prefix, 'bin/nspawn'), ['--help'], { encoding: 'utf8', env });
    expect(h.status).toBe(0);
    expect(h.stdout).toContain('Networking:');
  });

  it.each(commands().filter((c) => c !== 'nspawn'))('%s runs from the prefix', (c) => {
    const r = spawnSync(join(prefix, 'bin', c), ['--version'], { encoding: 'utf8', env });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/\d+\.\d+\.\d+/);
  });

  it('installs the man pages where man finds them', () => {
    for (const [sec, page] of [['1', 'nspawn'], ['1', 'nspawnctl'], ['8', 'nspawnd'], ['5', 'nspawn.settings']] as const) {
      const file = join(prefix, 'share/man', `man${sec}`, `${page}.${sec}`);
      expect(existsSync(file), file).toBe(true);
      const r = spawnSync('man', [sec, page], { encoding: 'utf8', env: { ...env, MANPATH: join(prefix, 'share/man'), MANWIDTH: '80', MANPAGER: 'cat', PAGER: 'cat' } });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^${page.toUpperCase().replace('.', '\\.')}\\(${sec}\\)`));
    }
  });

  it('ships the bash and zsh completions', () => {
    const dir = join(prefix, 'lib/node_modules/@nspawn/cli/dist/completions');
    expect(existsSync(join(dir, 'nspawn.bash'))).toBe(true);
    expect(existsSync(join(dir, '_nspawn'))).toBe(true);
    const r = spawnSync('bash', ['-c', `source ${join(dir, 'nspawn.bash')}; COMP_WORDS=(nspawn --boo); COMP_CWORD=1; _nspawn; echo "\${COMPREPLY[*]}"`], { encoding: 'utf8' });
    expect(r.stdout.trim()).toBe('--boot');
  });

  it.skipIf(process.getuid?.() !== 0)('runs a container with the prebuilt helper (no compiler on PATH)', () => {
    const tree = join(work, 'tree');
    execFileSync(join(ROOT, 'scripts/make-busybox-tree.sh'), [tree], { stdio: 'ignore' });
    const r = spawnSync(join(prefix, 'bin/nspawn'), ['-q', '-P', '-D', tree, '-M', 'pk-global', '/bin/sh', '-c', 'echo "in $(hostname) as $$"'], { encoding: 'utf8', env, timeout: 30000 });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('in pk-global as 1\n');
    expect(r.status).toBe(0);
  });

  it.skipIf(process.getuid?.() !== 0)('runs a -U container: the range lock and the idmapped root through koffi (no compiler, no tool of its own)', () => {
    const tree = join(work, 'tree-u');
    execFileSync(join(ROOT, 'scripts/make-busybox-tree.sh'), [tree], { stdio: 'ignore' });
    const r = spawnSync(join(prefix, 'bin/nspawn'), ['-q', '-P', '-U', '-D', tree, '-M', 'pk-global-u', '/bin/cat', '/proc/self/uid_map'], { encoding: 'utf8', env, timeout: 30000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const [inside, outside, count] = r.stdout.trim().split(/\s+/).map(Number);
    expect([inside, count]).toEqual([0, 65536]);
    expect(outside! % 65536).toBe(0);
    expect(outside).toBeGreaterThan(0);
    expect(existsSync(`/run/systemd/nspawn-uid/${outside}`)).toBe(false); // released at the end
  });
});
