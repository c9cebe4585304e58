// The ways in: pullTar() from an HTTP server of the test's own on 127.0.0.1, and `nspawnctl copy-from` from a
// hostile container (a busybox machine under a private nspawnd whose tar(1) is replaced by a script that prints
// a hostile archive, or whose tree plants symlinks). Each asserts the canary outside is unchanged and that no half
// image, temp directory or archive is left.
import { type ChildProcess, spawn } from 'node:child_process';
import { execa, execaSync } from 'execa';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pullTar } from '../src/index.js';
import { buildTar } from '../src/test-build-tar.js';
import { type Fixture, makeFixture, storeListing } from './fixture.js';

const REPO = resolve(import.meta.dirname, '../../..');
const NSPAWND = join(REPO, 'apps/daemon/bin/nspawnd');
const NSPAWNCTL = join(REPO, 'apps/cli/bin/nspawnctl');

describe('pullTar from a local HTTP server', () => {
  let fx: Fixture;
  let server: Server;
  let url: string;
  const files = new Map<string, Buffer>();
  beforeAll(async () => {
    fx = makeFixture();
    server = createServer((req, res) => {
      const f = files.get(req.url ?? '');
      if (!f) {
        res.statusCode = 404;
        res.end();
      } else res.end(f);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    server.close();
    rmSync(fx.base, { recursive: true, force: true });
  });
  const serve = (name: string, data: Buffer) => {
    files.set(`/${name}`, data);
    files.set('/SHA256SUMS', Buffer.from([...files].filter(([k]) => k !== '/SHA256SUMS').map(([k, v]) => `${createHash('sha256').update(v).digest('hex')}  ${k.slice(1)}\n`).join('')));
  };

  it('a hostile archive is refused in one line naming the URL; nothing outside changes; nothing is left', async () => {
    serve('evil.tar', buildTar([{ name: 'd/', type: '5', mode: 0o6777 }, { name: 'd', type: '2', linkname: join(fx.outside, 'dir') }, { name: 'd/pwned', data: 'x' }]));
    const before = fx.snapshot();
    const e = await pullTar(`${url}/evil.tar`, { root: fx.store }).catch((x: unknown) => x as Error);
    expect(e).toBeInstanceOf(Error);
    expect((e as Error).message).toBe(`Refusing ${url}/evil.tar: member 'd/pwned' would be written through the symlink 'd'`);
    expect(fx.snapshot()).toBe(before);
    expect(storeListing(fx.store)).toEqual([]);
  });

  it('directory 06777 then symlink to a host file: imported, and the host file keeps its mode', async () => {
    serve('swap.tar', buildTar([{ name: 'x/', type: '5', mode: 0o6777 }, { name: 'x', type: '2', linkname: fx.victim }]));
    const before = fx.snapshot();
    const r = await pullTar(`${url}/swap.tar`, { root: fx.store });
    expect(fx.snapshot()).toBe(before);
    expect(storeListing(fx.store)).toEqual(['swap']);
    expect(readlinkSync(join(r.path, 'x'))).toBe(fx.victim);
  });

  it('a truncated download of a 100 GB declaration is refused before it is written', async () => {
    serve('huge.tar', buildTar([{ name: 'huge', size: 100 * 1024 ** 3, data: Buffer.alloc(4096) }]));
    const before = fx.snapshot();
    await expect(pullTar(`${url}/huge.tar`, { root: fx.store, name: 'huge' })).rejects.toThrow(
      `${url}/huge.tar: member 'huge': the archive is truncated (the member declares 107374182400 bytes of data, 5120 follow its header)`,
    );
    expect(fx.snapshot()).toBe(before);
    expect(storeListing(fx.store)).toEqual(['swap']);
  });
});

describe('nspawnctl copy-from a hostile container', () => {
  let fx: Fixture;
  let daemon: ChildProcess;
  let env: NodeJS.ProcessEnv;
  let machines: string;
  // asynchronous (execa): a start or a copy takes seconds, and a synchronous wait blocks the vitest worker
  const ctl = async (args: string[]) => {
    const r = await execa(NSPAWNCTL, [...args], { env, extendEnv: false, input: '', timeout: 60000, reject: false, stripFinalNewline: false });
    return { status: r.exitCode ?? null, stdout: String(r.stdout), stderr: String(r.stderr) };
  };
  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error('copy-from tests need root');
    for (const b of ['apps/cli/dist/nspawnctl.cjs', 'apps/cli/dist/nspawnd.cjs']) if (!existsSync(join(REPO, b))) throw new Error(`${b} is missing: run 'pnpm build' first`);
    fx = makeFixture();
    const base = join(fx.work, 'daemon');
    for (const d of ['run', 'etc', 'log', 'machines']) mkdirSync(join(base, d), { recursive: true });
    machines = join(base, 'machines');
    env = {
      ...process.env,
      NSPAWND_RUNTIME_DIR: join(base, 'run'),
      NSPAWND_CONFIG_DIR: join(base, 'etc'),
      NSPAWND_LOG_DIR: join(base, 'log'),
      NSPAWND_MACHINES_DIR: machines,
    };
    const tree = join(machines, 'im-cf');
    await execa(join(REPO, 'scripts/make-busybox-tree.sh'), [tree], { stdin: 'ignore', stdout: 'ignore', stderr: 'inherit' });
    // the container's tar prints whatever archive /evil.tar is
    unlinkSync(join(tree, 'bin/tar'));
    writeFileSync(join(tree, 'bin/tar'), '#!/bin/sh\nif [ -e /evil.tar ]; then cat /evil.tar; else exec /bin/busybox tar "$@"; fi\n');
    chmodSync(join(tree, 'bin/tar'), 0o755);
    // and its tree plants symlinks pointing at the host's paths
    mkdirSync(join(tree, 'srv/planted'), { recursive: true });
    writeFileSync(join(tree, 'srv/planted/file'), 'inside\n');
    execaSync('ln', ['-s', fx.victim, join(tree, 'srv/planted/victim')]);
    execaSync('ln', ['-s', '/', join(tree, 'srv/planted/root')]);
    daemon = spawn(process.execPath, [NSPAWND], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    daemon.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    daemon.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    for (let i = 0; !out.includes('listening on'); i++) {
      if (i > 300 || daemon.exitCode !== null) throw new Error(`nspawnd did not start: ${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const s = await ctl(['start', 'im-cf']);
    if (s.status !== 0) throw new Error(`start: ${s.stderr}`);
  });
  afterAll(async () => {
    try {
      await ctl(['terminate', 'im-cf']);
      for (let i = 0; i < 100 && (await ctl(['list', '--no-legend'])).stdout.includes('im-cf'); i++) await new Promise((r) => setTimeout(r, 100));
    } finally {
      if (daemon && daemon.exitCode === null) {
        const gone = new Promise((r) => daemon.once('exit', r));
        daemon.kill('SIGTERM');
        await gone;
      }
      await execa('rm', ['-rf', '--one-file-system', fx.base]);
    }
  });
  const evil = (tar: Buffer) => writeFileSync(join(machines, 'im-cf/evil.tar'), tar);
  const leftovers = () => readdirSync(fx.work).filter((n) => n.startsWith('.#'));

  it('a write through a symlink the archive plants: refused in one line, nothing outside changes, no temp left', async () => {
    evil(buildTar([{ name: 'x', type: '2', linkname: join(fx.outside, 'dir') }, { name: 'x/pwned', data: 'x' }]));
    const before = fx.snapshot();
    const r = await ctl(['copy-from', 'im-cf', '/x', join(fx.work, 'got')]);
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe("Refusing the archive of /x from machine im-cf: member 'x/pwned' would be written through the symlink 'x'");
    expect(fx.snapshot()).toBe(before);
    expect(existsSync(join(fx.work, 'got'))).toBe(false);
    expect(leftovers()).toEqual([]);
  });

  it('a directory 06777 replaced by a symlink to a host file: the host file keeps its mode', async () => {
    evil(buildTar([{ name: 'x/', type: '5', mode: 0o6777 }, { name: 'x', type: '2', linkname: fx.victim }]));
    const before = fx.snapshot();
    const r = await ctl(['copy-from', 'im-cf', '/x', join(fx.work, 'got2')]);
    expect(r.status, r.stderr).toBe(0);
    expect(fx.snapshot()).toBe(before);
    expect(statSync(fx.victim).mode & 0o7777).toBe(0o640);
    expect(readlinkSync(join(fx.work, 'got2'))).toBe(fx.victim);
    expect(leftovers()).toEqual([]);
  });

  it('an archive that climbs out with .. or lies about its size', async () => {
    for (const [tar, want] of [
      [buildTar([{ name: 'x/../../../outside/victim', data: 'pwned' }]), /member 'x\/\.\.\/\.\.\/\.\.\/outside\/victim' climbs out with '\.\.'/],
      [buildTar([{ name: 'x', size: 100 * 1024 ** 3, data: Buffer.alloc(4096) }]), /member 'x': the archive is truncated/],
    ] as const) {
      evil(tar);
      const before = fx.snapshot();
      const r = await ctl(['copy-from', 'im-cf', '/x', join(fx.work, 'got3')]);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(want);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(fx.snapshot()).toBe(before);
      expect(leftovers()).toEqual([]);
    }
  });

  it('a tree that plants symlinks to host paths comes back with the symlinks as symlinks, never followed', async () => {
    rmSync(join(machines, 'im-cf/evil.tar'), { force: true });
    const before = fx.snapshot();
    const r = await ctl(['copy-from', 'im-cf', '/srv/planted', join(fx.work, 'planted')]);
    expect(r.status, r.stderr).toBe(0);
    expect(fx.snapshot()).toBe(before);
    expect(readFileSync(join(fx.work, 'planted/file'), 'utf8')).toBe('inside\n');
    expect(readlinkSync(join(fx.work, 'planted/victim'))).toBe(fx.victim);
    expect(lstatSync(join(fx.work, 'planted/root')).isSymbolicLink()).toBe(true);
    expect(leftovers()).toEqual([]);
  });
});
