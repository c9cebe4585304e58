/**
 * bin/load.cjs: the bundle's code cache, made after the run (so it holds the start path's functions), read only
 * from a directory and a file of this user that nobody else can write, made again when V8 refuses it.
 */
import { execa, execaSync } from 'execa';
import { chmodSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { busyboxTreeForFile } from './helpers/busybox-tree.js';

const bin = (name: string) => fileURLToPath(new URL(`../bin/${name}`, import.meta.url));
const { cacheDir } = (await import(fileURLToPath(new URL('../bin/load.cjs', import.meta.url)))) as {
  cacheDir: (env: NodeJS.ProcessEnv) => string | undefined;
};
const box = busyboxTreeForFile('nspawn-test-load-');

function run(name: string, args: string[], cache: string, env: NodeJS.ProcessEnv = {}) {
  const r = execaSync(process.execPath, [bin(name), ...args], { env: { NSPAWN_CODE_CACHE: cache, ...env }, reject: false, stripFinalNewline: false });
  return { status: r.exitCode ?? null, stdout: String(r.stdout), stderr: String(r.stderr) };
}
const files = (d: string) => readdirSync(d).filter((n) => !n.endsWith('.tmp'));

describe('the code cache', () => {
  it('is written at exit when there was none, and used (not written again) by the next run', () => {
    const cache = join(box.dir, 'c1');
    expect(run('nspawn', ['--version'], cache).status).toBe(0);
    const [f] = files(cache);
    expect(f).toMatch(new RegExp(`^nspawn@${process.version}-${process.arch}@[0-9a-f]{8}-\\d+-\\d+-\\d+$`));
    const st = statSync(join(cache, f!));
    expect(st.mode & 0o777).toBe(0o600);
    expect(statSync(cache).mode & 0o777).toBe(0o700);
    expect(readFileSync(join(cache, f!))[0]).toBe(0); // made at exit
    const again = run('nspawn', ['--version'], cache);
    expect(again.stdout).toContain('nspawn');
    expect(statSync(join(cache, f!)).ino).toBe(st.ino); // accepted: not made again
  });

  it('the start path saves it before the hand-over, replacing one made at exit, and keeps it', () => {
    expect(process.getuid?.(), 'needs root: it starts a container').toBe(0);
    const cache = join(box.dir, 'c2');
    run('nspawn', ['--version'], cache);
    const start = ['-q', '-D', box.tree, '-M', 'ld-cache', '/bin/true'];
    expect(run('nspawn', start, cache).status).toBe(0);
    const [f] = files(cache);
    const saved = readFileSync(join(cache, f!));
    expect(saved[0]).toBe(1);
    const ino = statSync(join(cache, f!)).ino;
    expect(run('nspawn', start, cache).status).toBe(0);
    expect(statSync(join(cache, f!)).ino).toBe(ino);
  });

  it('the parts a start loads lazily (dist/nspawn-*.cjs) have caches of their own, made and then used the same way', () => {
    const cache = join(box.dir, 'c-parts');
    // --property= on a host without systemd: its part, and @nspawn/machined's parser (refused: nothing is made)
    const start = ['-q', '-D', box.tree, '-M', 'ld-parts', '--property=Bogus=1', '/bin/true'];
    const first = run('nspawn', start, cache);
    expect(first.stderr).toContain('Bogus=1');
    const made = files(cache).sort();
    expect(made.map((f) => f.split('@')[0])).toEqual(['nspawn-machined', 'nspawn-scope', 'nspawn']);
    const inodes = made.map((f) => statSync(join(cache, f)).ino);
    expect(run('nspawn', start, cache).stderr).toContain('Bogus=1');
    expect(files(cache).sort()).toEqual(made);
    expect(made.map((f) => statSync(join(cache, f)).ino)).toEqual(inodes); // accepted: not made again
  });

  it("a start that loads a part for the first time saves the command's cache again (a saved one may lack that path)", () => {
    expect(process.getuid?.(), 'needs root: it starts containers').toBe(0);
    const image = box.rawImage();
    const cache = join(box.dir, 'c-path');
    const ino = () => Object.fromEntries(files(cache).map((f) => [f.split('@')[0], [statSync(join(cache, f)).ino, readFileSync(join(cache, f))[0]]]));
    const plain = ['-q', '-D', box.tree, '-M', 'ld-path', '/bin/true'];
    const fromImage = ['-q', '-i', image, '-M', 'ld-path', '/bin/true'];
    expect(run('nspawn', plain, cache).status).toBe(0);
    const first = ino();
    expect(Object.keys(first)).toEqual(['nspawn']);
    expect(run('nspawn', fromImage, cache).status).toBe(0);
    const second = ino();
    expect(Object.keys(second).sort()).toEqual(['nspawn', 'nspawn-image-run']);
    expect(second.nspawn![0]).not.toBe(first.nspawn![0]); // saved again, with the command's image code
    expect([second.nspawn![1], second['nspawn-image-run']![1]]).toEqual([1, 1]);
    expect(run('nspawn', fromImage, cache).status).toBe(0);
    expect(run('nspawn', plain, cache).status).toBe(0);
    expect(ino()).toEqual(second); // complete now: nothing is written again
  });

  it('nspawnctl saves it after a list that worked, replacing one made at exit (--help), and keeps it', async () => {
    const cache = join(box.dir, 'c-ctl');
    const runtime = join(box.dir, 'ctl-run');
    mkdirSync(runtime);
    // a stand-in nspawnd: List answers "no machine" (an empty list, exit status 0)
    const { createVarlinkServer, VarlinkError } = await import('@nspawn/runtime');
    const server = createVarlinkServer({
      methods: {
        'io.systemd.Machine.List': () => {
          throw new VarlinkError('io.systemd.Machine.NoSuchMachine', {});
        },
      },
    });
    await new Promise<void>((r) => server.listen(join(runtime, 'io.systemd.Machine'), () => r()));
    try {
      const ctl = async (args: string[]) =>
        (await execa(process.execPath, [bin('nspawnctl-node'), ...args], { env: { NSPAWN_CODE_CACHE: cache, NSPAWND_RUNTIME_DIR: runtime }, reject: false })).exitCode;
      expect(await ctl(['--help'])).toBe(0);
      const [f] = files(cache);
      expect(readFileSync(join(cache, f!))[0]).toBe(0); // made at exit
      expect(await ctl(['list'])).toBe(0);
      expect(readFileSync(join(cache, f!))[0]).toBe(1); // saved after list
      const ino = statSync(join(cache, f!)).ino;
      expect(await ctl(['list'])).toBe(0);
      expect(statSync(join(cache, f!)).ino).toBe(ino);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('one refused by V8 (another Node, a damaged file) is made again', () => {
    const cache = join(box.dir, 'c3');
    run('nspawnctl-node', ['--help'], cache);
    const [f] = files(cache);
    writeFileSync(join(cache, f!), Buffer.concat([Buffer.of(1), Buffer.alloc(4096, 0x55)]), { mode: 0o600 });
    expect(run('nspawnctl-node', ['--help'], cache).status).toBe(0);
    const made = readFileSync(join(cache, f!));
    expect(made[0]).toBe(0);
    expect(made.subarray(1).equals(Buffer.alloc(4096, 0x55))).toBe(false);
  });

  it('is neither read nor written where others may write', () => {
    const cache = join(box.dir, 'c4');
    mkdirSync(cache);
    chmodSync(cache, 0o777);
    expect(run('nspawn', ['--version'], cache).status).toBe(0);
    expect(files(cache)).toEqual([]);
    // a file others may write, in a good directory, is not used: it is made again
    const good = join(box.dir, 'c5');
    run('nspawn', ['--version'], good);
    const [f] = files(good);
    writeFileSync(join(good, f!), Buffer.concat([Buffer.of(1), Buffer.alloc(64)]));
    chmodSync(join(good, f!), 0o666);
    expect(run('nspawn', ['--version'], good).status).toBe(0);
    expect(statSync(join(good, f!)).mode & 0o777).toBe(0o600);
  });

  it('$NSPAWN_CODE_CACHE=0 turns it off; its default place is per user, never /tmp', () => {
    const cache = join(box.dir, 'c6');
    expect(run('nspawn', ['--version'], '0', { HOME: cache }).status).toBe(0);
    expect(() => readdirSync(cache)).toThrow();
    expect(cacheDir({ NSPAWN_CODE_CACHE: '0' })).toBeUndefined();
    const def = cacheDir({ HOME: '/home/al' });
    expect(def).toBe(process.geteuid?.() === 0 ? '/var/cache/nspawn/code' : '/home/al/.cache/nspawn/code');
  });

  it('a cache of an earlier build of the command at the same path is removed when a new one is made', () => {
    const cache = join(box.dir, 'c7');
    run('nspawn', ['--version'], cache);
    const [mine] = files(cache);
    const place = mine!.split('@')[2]!.split('-')[0];
    const old = `nspawn@${process.version}-${process.arch}@${place}-1-2-3`;
    const elsewhere = `nspawn@${process.version}-${process.arch}@00000000-1-2-3`;
    const other = `nspawnctl@${process.version}-${process.arch}@${place}-1-2-3`;
    for (const n of [old, elsewhere, other]) writeFileSync(join(cache, n), 'x', { mode: 0o600 });
    rmSync(join(cache, mine!));
    run('nspawn', ['--version'], cache);
    const now = files(cache);
    expect(now).not.toContain(old);
    // another installation's, and another command's, stay
    expect(now).toContain(elsewhere);
    expect(now).toContain(other);
    expect(now).toContain(mine);
    // one not made again for 30 days goes, whatever its place (an installation that is gone)
    const stale = join(cache, elsewhere);
    const longAgo = new Date(Date.now() - 31 * 24 * 3600 * 1000);
    utimesSync(stale, longAgo, longAgo);
    rmSync(join(cache, mine!));
    run('nspawn', ['--version'], cache);
    expect(files(cache)).not.toContain(elsewhere);
    expect(files(cache)).toContain(other);
  });
});
