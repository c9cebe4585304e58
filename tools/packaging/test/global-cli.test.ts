// The bundled CLI for end users: `npm install -g` of apps/cli's packed tarball, on a machine path with no C
// compiler, brings nspawn (and nspawnctl, nspawnd: every command whose source the workspace has), its man
// pages and its shell completions, and runs a real container. It is the one published package with an nspawnd
// bin (the daemon's package has none: a global install of both would clash).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { noCompilerEnv, packAll, ROOT, tarballFiles, tarballManifest, workspacePackages } from '../lib/workspace.mjs';

const cli = workspacePackages('apps').find((p) => p.name === '@nspawn/cli')!;
let work = '';
let prefix = '';
let tgz = '';
let env: NodeJS.ProcessEnv;

/** CMD ARGS to completion (execa, not rejecting): { status, stdout, stderr } */
async function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeout?: number } = {}) {
  const r = await execa(cmd, args, { reject: false, stdin: 'ignore', stripFinalNewline: false, ...(opts.env ? { env: opts.env, extendEnv: false } : {}), ...(opts.timeout ? { timeout: opts.timeout } : {}) });
  return { status: r.exitCode, stdout: r.stdout, stderr: r.stderr };
}

/** The commands the workspace has sources for (what apps/cli/scripts/bundle.mjs bundles). */
function commands(): string[] {
  const out = ['nspawn'];
  if (existsSync(join(cli.dir, 'src/nspawnctl.ts'))) out.push('nspawnctl');
  if (['nspawnd.ts', 'main.ts', 'cli.ts'].some((f) => existsSync(join(ROOT, 'apps/daemon/src', f)))) out.push('nspawnd');
  if (existsSync(join(cli.dir, 'src/nspawn-oci.ts'))) out.push('nspawn-oci');
  return out;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'nspawn-test-global-'));
  tgz = packAll([cli], join(work, 'tarballs')).get('@nspawn/cli')!;
  // (the installed nspawn's code cache in the work directory: a prefix made per run would leave one each in /var/cache)
  env = { ...noCompilerEnv(join(work, 'nocc')), NSPAWN_CODE_CACHE: join(work, 'code-cache') };
  prefix = join(work, 'prefix');
  // (async: npm install takes a minute on a busy machine, and a test worker blocked that long makes vitest's RPC time out)
  await execa('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', tgz], { env, extendEnv: false, stdin: 'ignore' });
});
afterAll(() => {
  const left = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => work && l.includes(work));
  if (work) rmSync(work, { recursive: true, force: true });
  expect(left).toEqual([]);
});

describe('the global package', () => {
  it('is self-contained: our libraries bundled (only third-party native modules left to npm), no workspace ranges', async () => {
    const m = tarballManifest(tgz);
    expect(Object.keys(m.dependencies ?? {}).filter((d) => d.startsWith('@nspawn/'))).toEqual([]);
    expect(JSON.stringify(m)).not.toMatch(/workspace:/);
    const files = tarballFiles(tgz);
    expect(files).toEqual(
      expect.arrayContaining(['bin/nspawn', 'bin/load.cjs', 'dist/nspawn.cjs', 'dist/nspawn-helper-linux-x64', 'dist/nspawn-helper-linux-arm64', 'dist/nspawn-sys-linux-x64.node', 'dist/nspawn-sys-linux-arm64.node']),
    );
    expect(files.filter((f) => f.endsWith('.ts') || f.startsWith('src/') || f.startsWith('test/'))).toEqual([]);
  });

  it('has a bin for every command the workspace builds (nspawn, nspawnctl, nspawnd, nspawn-oci)', async () => {
    expect(Object.keys(cli.pkg.bin).sort()).toEqual(commands().sort());
  });

  it('is the only published package with these bins (nspawnd is the CLI\'s, not the daemon package\'s)', () => {
    const published = [...workspacePackages('packages'), ...workspacePackages('apps')].filter((p) => !p.pkg.private);
    const owners = new Map<string, string[]>();
    for (const p of published) {
      const bins = typeof p.pkg.bin === 'string' ? { [p.name.split('/').pop()!]: p.pkg.bin } : (p.pkg.bin ?? {});
      for (const b of Object.keys(bins)) owners.set(b, [...(owners.get(b) ?? []), p.name]);
    }
    expect([...owners].filter(([, o]) => o.length > 1)).toEqual([]);
    expect(owners.get('nspawnd')).toEqual(['@nspawn/cli']);
  });

  it('installs nspawnd from @nspawn/cli', async () => {
    expect(realpathSync(join(prefix, 'bin/nspawnd'))).toBe(join(prefix, 'lib/node_modules/@nspawn/cli/bin/nspawnd'));
  });

  it('nspawn --version and --help run from the prefix', async () => {
    const v = await run(join(prefix, 'bin/nspawn'), ['--version'], { env });
    expect(v.status).toBe(0);
    expect(v.stdout).toMatch(new RegExp(`^nspawn ${cli.version.replace(/\./g, '\\.')} `)); // the package's version, bumped by changesets
    const h = await run(join(prefix, 'bin/nspawn'), ['--help'], { env });
    expect(h.status).toBe(0);
    expect(h.stdout).toContain('Networking:');
  });

  it.each(commands().filter((c) => c !== 'nspawn'))('%s runs from the prefix', async (c) => {
    const r = await run(join(prefix, 'bin', c), ['--version'], { env });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/\d+\.\d+\.\d+/);
  });

  it('nspawn-oci from the prefix runs its native front end (found through the bin\'s symlink, executable after npm), no Node for state', async () => {
    if (!commands().includes('nspawn-oci')) throw new Error('no nspawn-oci in this workspace');
    const arch = process.arch === 'arm64' ? 'arm64' : 'x64';
    expect(tarballFiles(tgz)).toEqual(expect.arrayContaining(['bin/nspawn-oci-node', 'dist/nspawn-oci-front-linux-x64', 'dist/nspawn-oci-front-linux-arm64']));
    // a PATH with uname (the bin asks it the architecture) and readlink, and no node: what answers is the front end
    const path = join(work, 'oci-nonode');
    mkdirSync(path, { recursive: true });
    for (const t of ['uname', 'readlink']) if (!existsSync(join(path, t))) symlinkSync(`/usr/bin/${t}`, join(path, t));
    const r = await run(join(prefix, 'bin/nspawn-oci'), ['--root', join(work, 'oci-state'), 'state', 'nosuch'], { env: { PATH: path } });
    expect(r).toEqual({ status: 1, stdout: '', stderr: 'container does not exist: nosuch\n' });
    expect(existsSync(join(prefix, `lib/node_modules/@nspawn/cli/dist/nspawn-oci-front-linux-${arch}`))).toBe(true);
  });

  it('nspawnctl from the prefix runs its native front end (through the bin\'s symlink, executable after npm), no Node for what it serves', async () => {
    if (!commands().includes('nspawnctl')) throw new Error('no nspawnctl in this workspace');
    const arch = process.arch === 'arm64' ? 'arm64' : 'x64';
    expect(tarballFiles(tgz)).toEqual(expect.arrayContaining(['bin/nspawnctl-node', 'bin/front.sh', 'dist/nspawnctl-front-linux-x64', 'dist/nspawnctl-front-linux-arm64']));
    // a PATH with uname, readlink and chmod and no node: what answers is the front end (as root: the verb's check)
    const path = join(work, 'ctl-nonode');
    mkdirSync(path, { recursive: true });
    for (const t of ['uname', 'readlink', 'chmod']) if (!existsSync(join(path, t))) symlinkSync(`/usr/bin/${t}`, join(path, t));
    const r = await run(join(prefix, 'bin/nspawnctl'), ['terminate'], { env: { PATH: path } });
    expect(r).toEqual({ status: 1, stdout: '', stderr: 'terminate needs a machine name.\n' });
    expect(existsSync(join(prefix, `lib/node_modules/@nspawn/cli/dist/nspawnctl-front-linux-${arch}`))).toBe(true);
  });

  it('installs the man pages where man finds them', async () => {
    for (const [sec, page] of [['1', 'nspawn'], ['1', 'nspawnctl'], ['8', 'nspawnd'], ['5', 'nspawn.settings']] as const) {
      const file = join(prefix, 'share/man', `man${sec}`, `${page}.${sec}`);
      expect(existsSync(file), file).toBe(true);
      const r = await run('man', [sec, page], { env: { ...env, MANPATH: join(prefix, 'share/man'), MANWIDTH: '80', MANPAGER: 'cat', PAGER: 'cat' } });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^${page.toUpperCase().replace('.', '\\.')}\\(${sec}\\)`));
    }
  });

  it('ships the bash and zsh completions', async () => {
    const dir = join(prefix, 'lib/node_modules/@nspawn/cli/dist/completions');
    expect(existsSync(join(dir, 'nspawn.bash'))).toBe(true);
    expect(existsSync(join(dir, '_nspawn'))).toBe(true);
    const r = await run('bash', ['-c', `source ${join(dir, 'nspawn.bash')}; COMP_WORDS=(nspawn --boo); COMP_CWORD=1; _nspawn; echo "\${COMPREPLY[*]}"`]);
    expect(r.stdout.trim()).toBe('--boot');
  });

  it('nspawnd --web serves the web view from the installed package (its own bundle and static files)', async () => {
    expect(process.getuid?.(), 'needs root: nspawnd runs as root').toBe(0);
    if (!commands().includes('nspawnd')) throw new Error('no nspawnd in this workspace');
    expect(tarballFiles(tgz)).toEqual(expect.arrayContaining(['dist/nspawnd-web.cjs', 'dist/nspawnd-import.cjs', 'dist/web/index.html', 'dist/web/app.js', 'dist/web/style.css', 'dist/web/uPlot.min.css']));
    const base = join(work, 'nspawnd');
    const denv: NodeJS.ProcessEnv = { ...env, NSPAWND_RUNTIME_DIR: join(base, 'run'), NSPAWND_CONFIG_DIR: join(base, 'etc'), NSPAWND_LOG_DIR: join(base, 'log'), NSPAWND_MACHINES_DIR: join(base, 'machines') };
    mkdirSync(join(base, 'machines'), { recursive: true });
    const d = spawn(join(prefix, 'bin/nspawnd'), ['--web=127.0.0.1:0'], { env: denv, stdio: ['ignore', 'ignore', 'pipe'] });
    let out = '';
    d.stderr!.on('data', (x: Buffer) => (out += x.toString()));
    const get = (url: string, headers: Record<string, string> = {}) =>
      new Promise<{ status: number; cookie?: string[]; type?: string; body: string }>((resolve, reject) => {
        const u = new URL(url);
        const r = request({ host: u.hostname, port: u.port, path: u.pathname + u.search, headers, agent: false }, (res) => {
          let body = '';
          res.on('data', (x: Buffer) => (body += x.toString()));
          res.on('end', () => resolve({ status: res.statusCode!, cookie: res.headers['set-cookie'], type: res.headers['content-type'], body }));
        });
        r.on('error', reject);
        r.end();
      });
    try {
      for (let i = 0; i < 300 && !out.includes('listening on'); i++) {
        if (d.exitCode !== null) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(out).toContain('listening on');
      const w = spawnSync(join(prefix, 'bin/nspawnctl'), ['web'], { encoding: 'utf8', env: denv });
      expect(w.stderr).toBe('');
      expect(w.stdout).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?token=[\w-]{43}\n$/);
      const url = new URL(w.stdout.trim());
      expect((await get(url.origin + '/')).status).toBe(401);
      const swap = await get(url.href);
      expect(swap.status).toBe(200);
      const cookie = swap.cookie![0]!.split(';')[0]!;
      const page = await get(url.origin + '/', { Cookie: cookie });
      expect(page.status).toBe(200);
      expect(page.body).toContain('<script src="/static/app.js" defer></script>');
      const app = await get(url.origin + '/static/app.js', { Cookie: cookie });
      expect([app.status, app.type]).toEqual([200, 'text/javascript; charset=utf-8']);
      expect(app.body).toContain('u-title'); // uPlot, bundled in at build time
      expect((await get(url.origin + '/static/uPlot.min.css', { Cookie: cookie })).status).toBe(200);
      expect(JSON.parse((await get(url.origin + '/api/machines', { Cookie: cookie })).body)).toEqual({ machines: [], now: expect.any(Number) });
    } finally {
      if (d.exitCode === null) {
        const done = new Promise((r) => d.once('exit', r));
        d.kill('SIGTERM');
        await done;
      }
      rmSync(base, { recursive: true, force: true });
    }
  });

  it('runs a container with the prebuilt helper (no compiler on PATH)', async () => {
    expect(process.getuid?.(), 'needs root: it starts a container').toBe(0);
    const tree = join(work, 'tree');
    await execa(join(ROOT, 'scripts/make-busybox-tree.sh'), [tree]);
    const r = await run(join(prefix, 'bin/nspawn'), ['-q', '-P', '-D', tree, '-M', 'pk-global', '/bin/sh', '-c', 'echo "in $(hostname) as $$"'], { env, timeout: 30000 });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('in pk-global as 1\n');
    expect(r.status).toBe(0);
  });

  it('runs a -U container: the range lock and the idmapped root through koffi (no compiler, no tool of its own)', async () => {
    expect(process.getuid?.(), 'needs root: it starts a container').toBe(0);
    const tree = join(work, 'tree-u');
    await execa(join(ROOT, 'scripts/make-busybox-tree.sh'), [tree]);
    const r = await run(join(prefix, 'bin/nspawn'), ['-q', '-P', '-U', '-D', tree, '-M', 'pk-global-u', '/bin/cat', '/proc/self/uid_map'], { env, timeout: 30000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const [inside, outside, count] = r.stdout.trim().split(/\s+/).map(Number);
    expect([inside, count]).toEqual([0, 65536]);
    expect(outside! % 65536).toBe(0);
    expect(outside).toBeGreaterThan(0);
    expect(existsSync(`/run/systemd/nspawn-uid/${outside}`)).toBe(false); // released at the end
  });
});
