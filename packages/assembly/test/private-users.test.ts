/**
 * Private users through `nspawn`, side by side with systemd-nspawn 252: -U ranges (same uid_map for the same
 * machine name), ownership map and chown, concurrency with each other and with systemd-nspawn, kill -9, refusals.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { execa, execaSync } from 'execa';
import { chownSync, existsSync, mkdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCK_DIR, machineCandidate, tryLockFile } from '@nspawn/uidrange';
import { makeTree, NSPAWN_BIN, referenceCommand, requireRoot } from './helpers.js';

requireRoot();

interface Ran {
  status: number;
  out: string;
  err: string;
}
const base = ['-q', '--register=no', '--keep-unit'];
// asynchronous (execa): a container run takes a while (-U chowns the tree), and a synchronous wait blocks the worker
async function run([cmd, pre]: [string, string[]], args: string[]): Promise<Ran> {
  const r = await execa(cmd, [...pre, ...base, ...args], { stdin: 'ignore', reject: false, stripFinalNewline: false });
  return { status: r.exitCode ?? 1, out: String(r.stdout), err: String(r.stderr) };
}
const ours = (args: string[]) => run([NSPAWN_BIN, []], args);
const theirs = (args: string[]) => run(referenceCommand(), args);
function mapOf(out: string): [number, number, number] {
  const f = out.trim().split('\n')[0]!.trim().split(/\s+/).map(Number);
  return [f[0]!, f[1]!, f[2]!];
}
function ownership(root: string, shift = 0): string {
  return execaSync('find', [root, '-printf', '%P %U %G %m %y\n'], { maxBuffer: 1 << 28, stripFinalNewline: false }).stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const [p, u, g, m, y] = l.split(' ');
      return `${p} ${Number(u) - shift} ${Number(g) - shift} ${m} ${y}`;
    })
    .sort()
    .join('\n');
}
function common(a: string, b: string): [string, string] {
  const path = (l: string) => l.slice(0, l.indexOf(' '));
  const pa = new Set(a.split('\n').map(path));
  const pb = new Set(b.split('\n').map(path));
  return [a.split('\n').filter((l) => pb.has(path(l))).join('\n'), b.split('\n').filter((l) => pa.has(path(l))).join('\n')];
}
function lockHeld(b: number): boolean {
  const p = join(LOCK_DIR, String(b));
  if (!existsSync(p)) return false;
  const ino = statSync(p).ino;
  return readFileSync('/proc/locks', 'utf8').split('\n').some((l) => l.includes('OFDLCK') && l.split(/\s+/).some((f) => f.endsWith(`:${ino}`)));
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
function exited(c: ChildProcess): Promise<number | null> {
  return c.exitCode !== null ? Promise.resolve(c.exitCode) : new Promise((r) => c.once('exit', (code) => r(code)));
}

/** trees on ext4 (/var/tmp) and on btrfs on a loop device */
const fsDirs: Array<{ fs: string; dir: string; cleanup: () => void }> = [];
beforeAll(() => {
  const t = makeTree('ut-pu-');
  fsDirs.push({ fs: 'ext4', dir: t.dir, cleanup: t.cleanup });
  try {
    execaSync('which', ['mkfs.btrfs'], { stdio: 'ignore' });
  } catch {
    return;
  }
  const b = makeTree('ut-pub-');
  const img = join(b.dir, 'img');
  const mnt = join(b.dir, 'mnt');
  mkdirSync(mnt);
  execaSync('truncate', ['-s', '300M', img]);
  execaSync('mkfs.btrfs', ['-q', img]);
  const loop = execaSync('losetup', ['--find', '--show', img]).stdout.trim();
  execaSync('mount', [loop, mnt]);
  fsDirs.push({
    fs: 'btrfs',
    dir: mnt,
    cleanup: () => {
      execaSync('umount', [mnt]);
      execaSync('losetup', ['-d', loop]);
      b.cleanup();
    },
  });
}, 120000);
afterAll(() => {
  for (const f of fsDirs.splice(0).reverse()) f.cleanup();
});
/** a busybox tree under the file system's dir */
function tree(fs: string, name: string): string {
  const d = fsDirs.find((f) => f.fs === fs)!.dir;
  const root = join(d, name);
  rmSync(root, { recursive: true, force: true });
  execaSync(join(import.meta.dirname, '../../../scripts/make-busybox-tree.sh'), [root], { stdio: 'ignore' });
  return root;
}

describe.each(['ext4', 'btrfs'])('on %s', (fs) => {
  it('-U: the uid_map of systemd-nspawn for the same machine name, an idmapped root, files on disk stay 0-owned', async (ctx) => {
    if (!fsDirs.some((f) => f.fs === fs)) return ctx.skip();
    const t = tree(fs, 'map');
    const name = `ut-map-${fs}`;
    const cmd = ['sh', '-c', 'cat /proc/self/uid_map; cat /proc/self/gid_map; grep -E "^[0-9]+ [0-9]+ [0-9:]+ [^ ]+ / " /proc/self/mountinfo; touch /made-inside; ls -ln /made-inside'];
    const a = await ours(['-U', '-D', t, '-M', name, ...cmd]);
    expect(a.status, a.err).toBe(0);
    const onDiskA = ownership(t);
    rmSync(join(t, 'made-inside'));
    const b = await theirs(['-U', '-D', t, '-M', name, ...cmd]);
    expect(b.status, b.err).toBe(0);
    const la = a.out.split('\n');
    const lb = b.out.split('\n');
    expect(mapOf(la[0]!)).toEqual([0, machineCandidate(name), 65536]);
    expect(la[0]).toBe(lb[0]);
    expect(la[1]).toBe(lb[1]);
    expect(la[2]).toMatch(/\bidmapped\b/);
    expect(lb[2]).toMatch(/\bidmapped\b/);
    expect(la[3]).toMatch(/ 0 +0 /); // root inside
    expect(statSync(join(t, 'made-inside')).uid).toBe(0); // ... is 0 on disk, as under systemd-nspawn
    const [x, y] = common(onDiskA, ownership(t));
    expect(x).toBe(y);
    expect(statSync(t).uid).toBe(0);
  });

  it('-U --private-users-ownership=chown: the same range and the same files on disk as systemd-nspawn', async (ctx) => {
    if (!fsDirs.some((f) => f.fs === fs)) return ctx.skip();
    const t1 = tree(fs, 'chown-ours');
    const t2 = tree(fs, 'chown-theirs');
    const name = `ut-chown-${fs}`;
    // compare what was there before: each tool then adds its own files while starting (e.g. /etc/localtime, which
    // systemd-nspawn writes as host root after the chown)
    const before = new Set(ownership(t1).split('\n').map((l) => l.slice(0, l.indexOf(' '))));
    const only = (x: string) => x.split('\n').filter((l) => before.has(l.slice(0, l.indexOf(' ')))).join('\n');
    const a = await ours(['-U', '--private-users-ownership=chown', '-D', t1, '-M', name, 'cat', '/proc/self/uid_map']);
    expect(a.status, a.err).toBe(0);
    const b = await theirs(['-U', '--private-users-ownership=chown', '-D', t2, '-M', name, 'cat', '/proc/self/uid_map']);
    expect(b.status, b.err).toBe(0);
    expect(a.out).toBe(b.out);
    const shift = mapOf(a.out)[1];
    expect(statSync(t1).uid).toBe(shift);
    const [x, y] = [only(ownership(t1)), only(ownership(t2))];
    expect(x.split('\n').length).toBeGreaterThan(250);
    expect(x).toBe(y);
    // the next -U start (auto) takes the tree's range again and has nothing to chown
    const again = await ours(['-U', '-D', t1, '-M', name, 'sh', '-c', 'cat /proc/self/uid_map; grep -E "^[0-9]+ [0-9]+ [0-9:]+ [^ ]+ / " /proc/self/mountinfo']);
    expect(again.status, again.err).toBe(0);
    expect(mapOf(again.out)[1]).toBe(shift);
    expect(again.out).not.toMatch(/idmapped/);
  });
});

describe('auto without idmapped mounts', () => {
  it('falls back to chown on a file system without them (ramfs), as systemd-nspawn does; map is refused', async () => {
    const d = join(fsDirs.find((f) => f.fs === 'ext4')!.dir, 'ramfs');
    mkdirSync(d);
    execaSync('mount', ['-t', 'ramfs', 'ut-ramfs', d]);
    try {
      const mk = (n: string) => {
        execaSync(join(import.meta.dirname, '../../../scripts/make-busybox-tree.sh'), [join(d, n)], { stdio: 'ignore' });
        return join(d, n);
      };
      const t1 = mk('ours');
      const t2 = mk('theirs');
      const name = 'ut-ramfs';
      const refused = await ours(['-U', '--private-users-ownership=map', '-D', t1, '-M', name, '/bin/true']);
      const refusedSd = await theirs(['-U', '--private-users-ownership=map', '-D', t2, '-M', name, '/bin/true']);
      expect(refused.status).toBe(1);
      expect(refusedSd.status).toBe(1);
      expect(refused.err).toContain('ID mapped mounts are apparently not available, sorry.');
      expect(refusedSd.err).toContain('ID mapped mounts are apparently not available, sorry.');
      const a = await ours(['-U', '-D', t1, '-M', name, 'sh', '-c', 'cat /proc/self/uid_map; grep -c idmapped /proc/self/mountinfo || true']);
      const b = await theirs(['-U', '-D', t2, '-M', name, 'sh', '-c', 'cat /proc/self/uid_map; grep -c idmapped /proc/self/mountinfo || true']);
      expect(a.status, a.err).toBe(0);
      expect(a.out).toBe(b.out);
      expect(a.out.split(/\r?\n/)[1]).toBe('0');
      const shift = mapOf(a.out)[1];
      expect(statSync(join(t1, 'bin/busybox')).uid).toBe(shift);
      expect(statSync(join(t2, 'bin/busybox')).uid).toBe(shift);
    } finally {
      execaSync('umount', [d]);
      rmSync(d, { recursive: true, force: true });
    }
  });
});

describe('with --ephemeral', () => {
  it('-U -x: the machine\'s range, and the tree itself stays as it was (systemd-nspawn: the same map)', async () => {
    const t = tree('ext4', 'eph');
    const before = ownership(t);
    const name = 'ut-eph';
    const a = await ours(['-U', '-x', '-D', t, '-M', name, 'sh', '-c', 'cat /proc/self/uid_map; touch /made; ls -ln /bin/busybox']);
    expect(a.status, a.err).toBe(0);
    const b = await theirs(['-U', '-x', '-D', t, '-M', name, 'cat', '/proc/self/uid_map']);
    expect(b.status, b.err).toBe(0);
    expect(a.out.split('\n')[0]).toBe(b.out.split('\n')[0]);
    expect(a.out).toMatch(/ 0 +0 /); // root's files are root's inside
    expect(ownership(t)).toBe(before);
  });
});

describe('settings files', () => {
  it('PrivateUsers=pick in a trusted .nspawn file means chown (settings_load()), as under systemd-nspawn', async () => {
    const t1 = tree('ext4', 'pfile-ours');
    const t2 = tree('ext4', 'pfile-theirs');
    const name = 'ut-pfile';
    const file = `/run/systemd/nspawn/${name}.nspawn`;
    mkdirSync('/run/systemd/nspawn', { recursive: true });
    writeFileSync(file, '[Exec]\nPrivateUsers=pick\n');
    try {
      const a = await ours(['-D', t1, '-M', name, 'cat', '/proc/self/uid_map']);
      const b = await theirs(['-D', t2, '-M', name, 'cat', '/proc/self/uid_map']);
      expect(a.status, a.err).toBe(0);
      expect(a.out).toBe(b.out);
      const shift = mapOf(a.out)[1];
      expect(statSync(join(t1, 'bin/busybox')).uid).toBe(shift);
      expect(statSync(join(t2, 'bin/busybox')).uid).toBe(shift);
    } finally {
      rmSync(file, { force: true });
    }
  });
});

describe('ranges given by hand', () => {
  it('--private-users=BASE:COUNT, identity and yes give the maps systemd-nspawn gives', async () => {
    const t = tree('ext4', 'fixed');
    for (const args of [['--private-users=8060928:65536'], ['--private-users=identity'], ['--private-users=yes'], ['--private-users=8060928']]) {
      const a = await ours([...args, '-D', t, '-M', 'ut-fixed', 'cat', '/proc/self/uid_map']);
      const b = await theirs([...args, '-D', t, '-M', 'ut-fixed', 'cat', '/proc/self/uid_map']);
      expect(a.status, a.err).toBe(0);
      expect(a.out, args.join(' ')).toBe(b.out);
    }
    // PrivateUsers=yes reads the range off the tree's owner
    chownSync(t, 0x7c0000, 0x7c0000);
    const a = await ours(['--private-users=yes', '-D', t, '-M', 'ut-fixed', 'cat', '/proc/self/uid_map']);
    const b = await theirs(['--private-users=yes', '-D', t, '-M', 'ut-fixed', 'cat', '/proc/self/uid_map']);
    expect(mapOf(a.out)).toEqual([0, 0x7c0000, 65536]);
    expect(a.out).toBe(b.out);
  });

  it("refusals: systemd's for chown with a misaligned base or a count other than 65536; ours for host users' IDs", async () => {
    const t = tree('ext4', 'refuse');
    for (const args of [
      ['--private-users=8060933:65536', '--private-users-ownership=chown'],
      ['--private-users=8060928:1000', '--private-users-ownership=chown'],
    ]) {
      const a = await ours([...args, '-D', t, '-M', 'ut-refuse', '/bin/true']);
      const b = await theirs([...args, '-D', t, '-M', 'ut-refuse', '/bin/true']);
      expect(a.status).toBe(1);
      expect(b.status).toBe(1);
      expect(b.err).toContain('Automatic UID/GID adjusting is only supported for UID/GID ranges starting at multiples of 2^16 with a range of 2^16');
      expect(a.err).toContain('Automatic UID/GID adjusting is only supported for UID/GID ranges starting at multiples of 2^16 with a range of 2^16');
    }
    expect(statSync(t).uid).toBe(0); // nothing chowned
    const o = await ours(['--private-users=1:70000', '-D', t, '-M', 'ut-refuse', '/bin/true']);
    expect(o.status).toBe(1);
    expect(o.err).toMatch(/UID range 1:70000 \(--private-users=\) overlaps the host's users: ID \d+ is in \/etc\/passwd or \/etc\/group\. Refusing\./);
    const m = await ours(['-U', '--private-users-ownership=map', '-D', (chownSync(t, 0x7d0000, 0x7d0000), t), '-M', 'ut-refuse', '/bin/true']);
    expect(m.status).toBe(1);
    expect(m.err).toContain(`UID base of ${t} is not zero, UID mapping not supported.`);
    chownSync(t, 0x7d0000, 0x7e0000);
    const g = await ours(['-U', '-D', t, '-M', 'ut-refuse', '/bin/true']);
    expect(g.status).toBe(1);
    expect(g.err).toContain(`UID and GID base of ${t} don't match.`);
  });
});

describe('concurrency', () => {
  /**
   * Starts CMDS, each printing its uid_map and then waiting at a gate (GATE, bound on /home, gets a file "go" once
   * every container has printed): all of them run at the same time, however slowly a loaded machine starts them (a
   * container that ended before the last one picked its range would rightly free its range for it). Returns the bases.
   */
  async function startAll(cmds: Array<[string, string[]]>, gate: string): Promise<number[]> {
    const kids = cmds.map(([bin, args]) => {
      const c = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      c.stdout!.on('data', (d) => (out += d));
      c.stderr!.on('data', (d) => (err += d));
      let ended = false;
      c.once('exit', () => (ended = true));
      return { c, get out() { return out; }, get err() { return err; }, get ended() { return ended; } };
    });
    try {
      // every container printed its map while none has ended (one that fails ends: its status is checked below)
      for (let i = 0; i < 2000 && !kids.every((k) => /^\s*0\s+\d+\s+\d+\s*$/m.test(k.out)) && !kids.some((k) => k.ended); i++) await sleep(50);
    } finally {
      writeFileSync(join(gate, 'go'), '');
    }
    const codes = await Promise.all(kids.map((k) => exited(k.c)));
    codes.forEach((code, i) => expect(code, `${cmds[i]![1].join(' ')}: ${kids[i]!.err}`).toBe(0));
    return kids.map((k) => mapOf(k.out)[1]);
  }
  /** a fresh gate directory for startAll() */
  function gateDir(name: string): string {
    const g = join(fsDirs.find((f) => f.fs === 'ext4')!.dir, `${name}-gate`);
    rmSync(g, { recursive: true, force: true });
    mkdirSync(g);
    return g;
  }
  const waitAtGate = 'cat /proc/self/uid_map; while [ ! -e /home/go ]; do sleep 0.1; done';

  it('50 containers started at once with -U get 50 disjoint ranges (all first try the tree owner\'s range)', async () => {
    const t = tree('ext4', 'c50');
    const owner = 0x7e0000;
    chownSync(t, owner, owner); // the top only: every start's first candidate is the same range
    const gate = gateDir('c50');
    const cmds: Array<[string, string[]]> = [];
    for (let i = 0; i < 50; i++)
      // --read-only: one tree for all, under a shared image lock
      cmds.push([NSPAWN_BIN, [...base, '-U', '--private-users-ownership=off', '--read-only', `--bind-ro=${gate}:/home`, '-D', t, '-M', `ut-c50-${i}`, 'sh', '-c', waitAtGate]]);
    const bases = await startAll(cmds, gate);
    // (on a failure: which ranges were shared, by whom)
    const shared = bases.map((b, i) => [b, i] as const).filter(([b]) => bases.indexOf(b) !== bases.lastIndexOf(b));
    expect(new Set(bases).size, `shared ranges (base, container): ${JSON.stringify(shared)}`).toBe(50);
    expect(bases.filter((b) => b === owner).length).toBe(1);
    for (const b of bases) expect(lockHeld(b)).toBe(false);
  }, 120000);

  it('nspawn and systemd-nspawn started together never share a range', async () => {
    const owner = 0x7f0000;
    const gate = gateDir('mix');
    const cmds: Array<[string, string[]]> = [];
    for (let i = 0; i < 10; i++) {
      const t = tree('ext4', `mix-${i}`);
      chownSync(t, owner, owner);
      const args = [...base, '-U', '--private-users-ownership=off', `--bind-ro=${gate}:/home`, '-D', t, '-M', `ut-mix-${i % 5}`, 'sh', '-c', waitAtGate];
      cmds.push(i % 2 === 0 ? [NSPAWN_BIN, args] : referenceCommand(args));
    }
    const bases = await startAll(cmds, gate);
    expect(new Set(bases).size).toBe(10);
  }, 120000);
});

describe('the range lock across the hand-over', () => {
  for (const handoff of [true, false])
    it(`${handoff ? 'handed over: the helper holds the inherited lock descriptor' : 'not handed over ($NSPAWN_HANDOFF=0): nspawn holds it'} for the run, and the file goes at the end`, async () => {
      const t = tree('ext4', handoff ? 'ho-lock' : 'ho-lock0');
      const name = handoff ? 'ut-ho-lock' : 'ut-ho-lock0';
      const want = machineCandidate(name);
      const c = spawn(NSPAWN_BIN, [...base, '-U', '-D', t, '-M', name, 'sleep', '1'], {
        stdio: 'ignore',
        env: { ...process.env, NSPAWN_HANDOFF: handoff ? '1' : '0' },
      });
      for (let i = 0; i < 400 && !lockHeld(want); i++) await sleep(5);
      await sleep(300);
      expect(lockHeld(want)).toBe(true);
      // which program holds it: the helper in nspawn's place (same PID), or Node
      const exe = readlinkSync(`/proc/${c.pid}/exe`);
      expect(exe).toMatch(handoff ? /\/nspawn-helper[^/]*$/ : /\/node$/);
      const fds = execaSync('ls', ['-l', `/proc/${c.pid}/fd`], { stripFinalNewline: false }).stdout;
      expect(fds).toContain(join(LOCK_DIR, String(want)));
      expect(await exited(c)).toBe(0);
      expect(existsSync(join(LOCK_DIR, String(want)))).toBe(false);
    }, 30000);
});

describe('kill -9', () => {
  it('of nspawn in the middle of a start (a chown) releases the range; the next start finishes the chown', async () => {
    const t = tree('ext4', 'kill');
    for (let i = 0; i < 30; i++) {
      mkdirSync(join(t, `srv/d${i}`), { recursive: true });
      for (let j = 0; j < 300; j++) writeFileSync(join(t, `srv/d${i}/f${j}`), '');
    }
    const name = 'ut-kill';
    const want = machineCandidate(name);
    const c = spawn(NSPAWN_BIN, [...base, '-U', '--private-users-ownership=chown', '-D', t, '-M', name, 'sleep', '30'], { stdio: 'ignore' });
    for (let i = 0; i < 400 && !lockHeld(want); i++) await sleep(5);
    expect(lockHeld(want)).toBe(true);
    c.kill('SIGKILL');
    await exited(c);
    // the lock died with the process (systemd leaves the file behind too; the next owner takes it over)
    await sleep(50);
    expect(lockHeld(want)).toBe(false);
    const l = tryLockFile(join(LOCK_DIR, String(want)));
    expect(l).toBeDefined();
    l!.release();
    const again = await ours(['-U', '--private-users-ownership=chown', '-D', t, '-M', name, 'cat', '/proc/self/uid_map']);
    expect(again.status, again.err).toBe(0);
    expect(mapOf(again.out)[1]).toBe(want);
    const owners = new Set(ownership(t).split('\n').map((x) => x.split(' ')[1]));
    expect([...owners]).toEqual([String(want)]);
  }, 60000);

  it('of a running container\'s nspawn releases the range too', async () => {
    const t = tree('ext4', 'kill2');
    const name = 'ut-kill2';
    const want = machineCandidate(name);
    const c = spawn(NSPAWN_BIN, [...base, '-U', '-D', t, '-M', name, 'sleep', '30'], { stdio: 'ignore' });
    for (let i = 0; i < 400 && !lockHeld(want); i++) await sleep(5);
    await sleep(200);
    expect(lockHeld(want)).toBe(true);
    c.kill('SIGKILL');
    await exited(c);
    await sleep(100);
    expect(lockHeld(want)).toBe(false);
    // the container died with the helper (its parent-death signal); its cgroup empties a moment later
    let r = await ours(['-U', '-D', t, '-M', name, 'cat', '/proc/self/uid_map']);
    for (let i = 0; i < 30 && r.status !== 0 && /is in use/.test(r.err); i++) {
      await sleep(100);
      r = await ours(['-U', '-D', t, '-M', name, 'cat', '/proc/self/uid_map']);
    }
    expect(r.status, r.err).toBe(0);
    expect(mapOf(r.out)[1]).toBe(want);
  }, 60000);
});
