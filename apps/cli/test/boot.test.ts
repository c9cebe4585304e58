/**
 * Booting an OS with -b, on a real terminal: a Debian 12 tree (scripts/make-debian-tree.sh: debootstrap with systemd
 * and dbus, cached) boots to its login prompt under nspawn, root logs in, and the system's state and failed units are
 * compared with the same tree booted by systemd-nspawn 252. Then power: poweroff, reboot (the loop, and 133 with
 * --keep-unit), signals from the host, the console's escape keys, SIGTERM to nspawn, sd_notify with
 * --notify-ready=yes; and the busybox image under busybox init, with the /etc/securetty pitfall.
 *
 * Root only (and gcc for the notify listener); it fails, never skips, without root, systemd-nspawn or a Debian tree
 * (made with debootstrap on the first run, then cached). After every boot nothing may be left: no mounts under the
 * temp dir, no machine scope, no process inside the tree.
 */
import { spawn } from 'node:child_process';
import { execa } from 'execa';
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { COMMON_FLAGS, makeTempDir, mountsUnder, NSPAWN_BIN, REPO, requireRootAndSystemdNspawn, toolCommand } from './helpers/containers.js';
import { PtySession } from './helpers/pty.js';
import { readMachineStats } from '@nspawn/runtime';

const PASSWORD = 'nspawn-Test-pw1';
const NOTIFY_LISTENER_SOURCE = fileURLToPath(new URL('./fixtures/notify-listener.c', import.meta.url));
const SIGRTMIN = 34;
let base: ReturnType<typeof makeTempDir> | undefined;
/** the Debian tree booted by nspawn (its password set by `nspawn -D tree passwd`), and a copy for systemd-nspawn */
let debian = '';
let debianSd = '';
let busybox = '';
const sessions: PtySession[] = [];

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
/** nspawn or systemd-nspawn with ARGS on a fresh pty */
function onPty(tool: 'nspawn' | 'systemd-nspawn', args: string[], env?: NodeJS.ProcessEnv): PtySession {
  const [file, pre] = toolCommand(tool);
  const s = new PtySession([file, ...pre, ...args].map(q).join(' '), env ? { env } : {});
  sessions.push(s);
  return s;
}

/** The machine's scope directories that exist, in every cgroup hierarchy. */
function scopesOf(name: string): string[] {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => ['cgroup', 'cgroup2'].includes(f[f.indexOf('-') + 1] ?? ''))
    .map((f) => f[4]!);
  return mounts.map((m) => join(m, 'machine.slice', `machine-${name}.scope`)).filter((d) => existsSync(d));
}

/** PIDs in DIR and its sub-cgroups */
function procsBelow(dir: string): number[] {
  const out: number[] = [];
  const walk = (d: string) => {
    try {
      for (const l of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) if (l.trim()) out.push(Number(l));
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
    } catch {
      // gone meanwhile
    }
  };
  walk(dir);
  return out;
}

/** The host PID of the container's PID 1: the process of the machine's scope that is PID 1 in its namespace. */
function containerPid1(name: string): number {
  for (const scope of scopesOf(name))
    for (const pid of procsBelow(scope)) {
      try {
        const ns = /^NSpid:\s+(.*)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]?.trim().split(/\s+/);
        if (ns && ns.length > 1 && ns.at(-1) === '1') return pid;
      } catch {
        // gone
      }
    }
  throw new Error(`no PID 1 found in the scope of machine ${name}`);
}

const ppidOf = (pid: number) => Number(/^PPid:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
/** nspawn's own PID: the parent of the helper, whose child the container's PID 1 is */
const nspawnPidOf = (pid1: number) => ppidOf(ppidOf(pid1));

/**
 * Processes whose root directory is the tree DIR: a container's (compared by device and inode, since a container's
 * root, seen through /proc/PID/root, is a mount in another mount namespace, not a path of ours).
 */
function processesIn(dir: string): number[] {
  const want = statSync(dir);
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      const st = statSync(`/proc/${d}/root`);
      if (st.dev === want.dev && st.ino === want.ino) out.push(Number(d));
    } catch {
      // gone, or a kernel thread
    }
  }
  return out;
}

/** After nspawn has ended: no mount under the temp dir, no scope of the machine, no process in the tree. */
function expectNothingLeft(tree: string, name: string): void {
  expect(mountsUnder(base!.dir), 'mounts left under the temp dir').toEqual([]);
  expect(scopesOf(name), 'machine scopes left').toEqual([]);
  expect(processesIn(tree), 'processes left in the tree').toEqual([]);
}

async function login(s: PtySession, password: string | undefined): Promise<void> {
  await s.expect(/^\S+ login: /m, 'the login prompt');
  s.send('root\r');
  if (password !== undefined) {
    await s.expect(/Password: /, 'the password prompt');
    s.send(`${password}\r`);
  }
  await s.expect(/root@\S+:~# /, "root's shell prompt");
}

/** Runs a command line in the logged-in shell and returns its output (between two markers the shell computes). */
async function shell(s: PtySession, cmdline: string): Promise<string> {
  s.send(`echo @@B$((6*7)); ${cmdline}; echo @@E$((6*7))\r`);
  const m = await s.expect(/@@B42\n([\s\S]*?)@@E42\n/, `the output of ${cmdline}`);
  return m[1]!;
}

/** The state and the failed units, as the test compares them between the two tools. */
async function systemState(s: PtySession): Promise<{ state: string; failed: string[]; multiUser: string }> {
  const state = (await shell(s, 'systemctl is-system-running --wait')).trim();
  const failed = (await shell(s, 'systemctl --failed --no-legend --plain'))
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0]!)
    .filter((u) => u !== '')
    .sort();
  const multiUser = (await shell(s, 'systemctl is-active multi-user.target')).trim();
  return { state, failed, multiUser };
}

beforeAll(async () => {
  requireRootAndSystemdNspawn();
  base = makeTempDir('nspawn-boot-');
  debian = join(base.dir, 'debns');
  debianSd = join(base.dir, 'debsd');
  busybox = join(base.dir, 'bbox');
  // asynchronous: debootstrap takes a minute the first time, and a synchronous wait blocks the vitest worker
  await execa(join(REPO, 'scripts/make-debian-tree.sh'), [debian], { stdin: 'ignore', stdout: 'ignore', stderr: 'inherit' });
  await execa(join(REPO, 'scripts/make-busybox-tree.sh'), [busybox]);
}, 600000);

// a test that failed half-way leaves its session running: end it (nspawn goes with its terminal) before the next
afterEach(async () => {
  for (const s of sessions.splice(0)) {
    s.kill();
    await s.exited;
  }
});

afterAll(() => {
  // whatever is still inside the trees
  if (!base) return;
  for (const pid of [debian, debianSd, busybox].filter((t) => existsSync(t)).flatMap(processesIn)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  // scopes of an nspawn that was killed with its terminal (now empty): deepest first
  const rmdirTree = (d: string) => {
    try {
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) rmdirTree(join(d, e.name));
      rmdirSync(d);
    } catch {
      // busy or gone
    }
  };
  for (const name of ['debns', 'bbox']) for (const scope of scopesOf(name)) rmdirTree(scope);
  const left = base.remove();
  expect(left, 'mounts left under the temp dir').toEqual([]);
});

describe('booting Debian 12 (systemd)', () => {
  it('root\'s password is set the seed\'s way: nspawn -D tree passwd, on a terminal', async () => {
    const s = onPty('nspawn', ['-q', '-D', debian, 'passwd']);
    await s.expect(/New password: /, 'the new password prompt');
    s.send(`${PASSWORD}\r`);
    await s.expect(/Retype new password: /, 'the retype prompt');
    s.send(`${PASSWORD}\r`);
    await s.expect(/password updated successfully/, 'the confirmation');
    expect(await s.wait('passwd')).toBe(0);
    expect(readFileSync(join(debian, 'etc/shadow'), 'utf8')).toMatch(/^root:\$[^:]+:/m);
    // the systemd-nspawn run gets the very same tree
    await execa('cp', ['-a', debian, debianSd]);
    expectNothingLeft(debian, 'debns');
  }, 120000);

  it('boots to multi-user.target, root logs in with the password; the same state and failed units as under systemd-nspawn -b; poweroff exits 0', async () => {
    const views: Record<string, Awaited<ReturnType<typeof systemState>>> = {};
    for (const [tool, tree] of [['nspawn', debian], ['systemd-nspawn', debianSd]] as const) {
      const s = onPty(tool, [...COMMON_FLAGS, '-D', tree, '-b']);
      await s.expect(/Welcome to .*Debian GNU\/Linux 12/, `${tool}: systemd's welcome`);
      await login(s, PASSWORD);
      views[tool] = await systemState(s);
      if (tool === 'nspawn') {
        // the machine's accounting, from the host, while systemd and its services run in it
        const stats = readMachineStats('debns');
        expect(stats?.tasks).toBeGreaterThan(3);
        expect(stats?.memoryBytes).toBeGreaterThan(0);
        expect(stats?.cpuUsageNs).toBeGreaterThan(0);
        // systemd inside manages its own subtree (the root of its cgroup namespace is the machine's scope): PID 1 is
        // in init.scope of the hierarchies it may write (name=systemd, unified), at the root of the others
        const cg = (await shell(s, 'cat /proc/1/cgroup')).split('\n').filter(Boolean);
        for (const l of cg) expect(l, 'PID 1 cgroup').toMatch(/^\d+:(name=systemd)?:\/init\.scope$|^\d+:[a-z_,]+:\/$/);
        expect(cg.filter((l) => l.endsWith('/init.scope')).length).toBe(scopesOf('debns').some((d) => d.includes('/unified/')) ? 2 : 1);
      }
      expect((await shell(s, 'cat /proc/1/comm; readlink /dev/console; systemd-detect-virt')).split('\n').filter(Boolean), tool).toEqual([
        'systemd',
        'pts/0',
        'systemd-nspawn',
      ]);
      s.send('poweroff\r');
      expect(await s.wait(`${tool}: poweroff`), `${tool} exit status`).toBe(0);
      expect(s.text).toContain(`Container ${tool === 'nspawn' ? 'debns' : 'debsd'} has been shut down.`);
      if (tool === 'nspawn') expectNothingLeft(debian, 'debns');
    }
    console.log(`boot: nspawn ${JSON.stringify(views.nspawn)}; systemd-nspawn ${JSON.stringify(views['systemd-nspawn'])}`);
    expect(views.nspawn!.multiUser).toBe('active');
    expect(views.nspawn).toEqual(views['systemd-nspawn']);
  }, 180000);

  it('the tree got its machine ID from the container UUID (systemd inside commits it), and the next boot keeps it', async () => {
    const id = readFileSync(join(debian, 'etc/machine-id'), 'utf8').trim();
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    const s = onPty('nspawn', ['-q', '--keep-unit', '-D', debian, '-b']);
    await login(s, PASSWORD);
    const inside = (await shell(s, 'cat /etc/machine-id; cat /run/host/container-uuid')).split('\n').filter(Boolean);
    expect(inside[0]).toBe(id);
    expect(inside[1]?.replace(/-/g, '')).toBe(id);
    // ^]^]p: power off from the console
    s.send('\x1d\x1dp');
    expect(await s.wait('^]^]p')).toBe(0);
    expectNothingLeft(debian, 'debns');
  }, 120000);

  it('reboot inside boots it again (systemd-nspawn\'s loop), then poweroff exits 0', async () => {
    const s = onPty('nspawn', ['-D', debian, '-b']);
    await login(s, PASSWORD);
    s.send('reboot\r');
    await s.expect(/Container debns is being rebooted\./, 'the reboot message');
    await s.expect(/Welcome to .*Debian GNU\/Linux 12/, 'the second boot');
    await login(s, PASSWORD);
    s.send('poweroff\r');
    expect(await s.wait('poweroff after a reboot')).toBe(0);
    expect(s.text.match(/Welcome to .*Debian/g)?.length).toBe(2);
    expectNothingLeft(debian, 'debns');
  }, 120000);

  it('root logs in without a password once `passwd -d root` ran in the container; reboot with --keep-unit exits 133', async () => {
    const r = await execa(process.execPath, [NSPAWN_BIN, '-q', '-D', debian, '-P', 'passwd', '-d', 'root'], { timeout: 60000, reject: false });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(readFileSync(join(debian, 'etc/shadow'), 'utf8')).toMatch(/^root::/m);
    const s = onPty('nspawn', ['--keep-unit', '-D', debian, '-b']);
    await login(s, undefined);
    s.send('reboot\r');
    expect(await s.wait('reboot with --keep-unit')).toBe(133);
    expect(s.text).toContain('Container debns is being rebooted.');
    expectNothingLeft(debian, 'debns');
  }, 120000);

  it("the securetty pitfall with pam_securetty (Debian 10's /etc/pam.d/login had it): root is refused on pts/0 until /etc/securetty lists it", async () => {
    const pam = join(debian, 'etc/pam.d/login');
    const securetty = join(debian, 'etc/securetty');
    const original = readFileSync(pam, 'utf8');
    expect(original, "Debian 12's login has no pam_securetty").not.toMatch(/^[^#]*pam_securetty/m);
    writeFileSync(pam, `auth [success=ok new_authtok_reqd=ok ignore=ignore user_unknown=bad default=die] pam_securetty.so\n${original}`);
    writeFileSync(securetty, 'console\ntty1\n');
    try {
      const s = onPty('nspawn', ['--keep-unit', '-D', debian, '-b']);
      await s.expect(/^\S+ login: /m, 'the login prompt');
      s.send('root\r');
      await s.expect(/Login incorrect/, 'the refusal');
      // the fix, in the tree, while it runs: the console's terminal is pts/0
      appendFileSync(securetty, 'pts/0\n');
      await login(s, undefined);
      s.send('poweroff\r');
      expect(await s.wait('poweroff')).toBe(0);
      expectNothingLeft(debian, 'debns');
    } finally {
      writeFileSync(pam, original);
      rmSync(securetty, { force: true });
    }
  }, 120000);

  it('from the host: SIGRTMIN+4 to PID 1 powers off (0), SIGINT to PID 1 reboots (133 with --keep-unit), SIGTERM to nspawn halts (0)', async () => {
    const cases: Array<{ what: string; signal: (pid1: number) => void; code: number; says: string }> = [
      { what: 'SIGRTMIN+4 to PID 1', signal: (pid1) => process.kill(pid1, SIGRTMIN + 4), code: 0, says: 'has been shut down' },
      { what: 'SIGINT to PID 1', signal: (pid1) => process.kill(pid1, 'SIGINT'), code: 133, says: 'is being rebooted' },
      {
        what: 'SIGTERM to nspawn',
        signal: (pid1) => process.kill(nspawnPidOf(pid1), 'SIGTERM'),
        code: 0,
        says: 'Trying to halt container. Send SIGTERM again to trigger immediate termination.',
      },
    ];
    for (const c of cases) {
      const s = onPty('nspawn', ['--keep-unit', '-D', debian, '-b']);
      await s.expect(/^\S+ login: /m, `${c.what}: the login prompt`);
      c.signal(containerPid1('debns'));
      expect(await s.wait(c.what), c.what).toBe(c.code);
      expect(s.text, c.what).toContain(c.says);
      expectNothingLeft(debian, 'debns');
    }
  }, 180000);

  it('the console\'s escape keys: ^]^]r reboots (133 with --keep-unit), ^]^]^] kills (1)', async () => {
    for (const [keys, code, says] of [
      ['\x1d\x1dr', 133, 'Container debns is being rebooted.'],
      ['\x1d\x1d\x1d', 1, 'Container debns terminated by signal KILL.'],
    ] as const) {
      const s = onPty('nspawn', ['--keep-unit', '-D', debian, '-b']);
      await s.expect(/^\S+ login: /m, 'the login prompt');
      s.send(keys);
      expect(await s.wait(JSON.stringify(keys))).toBe(code);
      expect(s.text).toContain(says);
      expectNothingLeft(debian, 'debns');
    }
  }, 120000);

  it('--notify-ready=yes: READY=1 reaches $NOTIFY_SOCKET only after the container\'s init sent it', async () => {
    // a unit that holds the boot (and so systemd's READY=1) until the test creates /run/nspawn-test-go inside
    const unit = join(debian, 'etc/systemd/system/nspawn-test-hold.service');
    const wants = join(debian, 'etc/systemd/system/multi-user.target.wants/nspawn-test-hold.service');
    writeFileSync(
      unit,
      '[Unit]\nDescription=Hold the boot for the notify test\n[Service]\nType=oneshot\nExecStart=/bin/sh -c "while [ ! -e /run/nspawn-test-go ]; do sleep 0.1; done"\n',
    );
    mkdirSync(join(debian, 'etc/systemd/system/multi-user.target.wants'), { recursive: true });
    symlinkSync('../nspawn-test-hold.service', wants);
    // the listener (test/fixtures/notify-listener.c): each message with the sender's PID
    const sock = join(base!.dir, 'notify.sock');
    const bin = join(base!.dir, 'notify-listener');
    await execa('gcc', ['-O1', '-Wall', '-o', bin, NOTIFY_LISTENER_SOURCE]);
    const listener = spawn(bin, [sock], { stdio: ['ignore', 'pipe', 'inherit'] });
    let lines: string[] = [];
    let buf = '';
    listener.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const parts = buf.split('\n');
      buf = parts.pop()!;
      lines.push(...parts);
    });
    const waitFor = async (pred: () => boolean, what: string) => {
      for (let i = 0; i < 600 && !pred(); i++) await new Promise((r) => setTimeout(r, 100));
      if (!pred()) throw new Error(`no ${what}; the listener got: ${lines.join(' | ')}`);
    };
    const messages = () =>
      lines
        .filter((l) => l.includes('\t'))
        .map((l) => ({ pid: Number(l.split('\t')[0]), msg: Buffer.from(l.split('\t')[1]!, 'hex').toString('utf8') }));
    try {
      await waitFor(() => lines.includes('listening'), 'listener');
      lines = [];
      const s = onPty('nspawn', ['-q', '--keep-unit', '-D', debian, '-b', '--notify-ready=yes'], { ...process.env, NOTIFY_SOCKET: sock });
      await waitFor(() => messages().some((m) => m.msg.includes('X_NSPAWN_LEADER_PID=')), 'leader message');
      const leader = Number(/X_NSPAWN_LEADER_PID=(\d+)/.exec(messages().find((m) => m.msg.includes('X_NSPAWN_LEADER_PID='))!.msg)![1]);
      expect(leader).toBe(containerPid1('debns'));
      // the boot is held: systemd has not said READY=1, so nspawn has not either
      const cmdline = (pid: number) => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        } catch {
          return '';
        }
      };
      await waitFor(() => processesIn(debian).some((pid) => cmdline(pid).includes('nspawn-test-go')), 'the held unit running');
      expect(messages().map((m) => m.msg)).not.toContain('READY=1\n');
      writeFileSync(`/proc/${leader}/root/run/nspawn-test-go`, '');
      await waitFor(() => messages().some((m) => m.msg === 'READY=1\n'), 'READY=1');
      const all = messages();
      const ready = all.findIndex((m) => m.msg === 'READY=1\n');
      expect(all[0]!.msg).toBe(`STATUS=Container running.\nX_NSPAWN_LEADER_PID=${leader}`);
      // init's own STATUS= comes with its READY=1, passed on as systemd-nspawn does
      expect(all.slice(ready).map((m) => m.msg)).toContain('STATUS=Container running: Ready.');
      // every message in nspawn's name (its service manager takes them with NotifyAccess=main)
      expect(new Set(all.map((m) => m.pid))).toEqual(new Set([nspawnPidOf(leader)]));
      s.send('\x1d\x1dp');
      expect(await s.wait('^]^]p')).toBe(0);
      await waitFor(() => messages().some((m) => m.msg === 'STOPPING=1\nSTATUS=Terminating...'), 'STOPPING=1');
      expectNothingLeft(debian, 'debns');
    } finally {
      listener.kill('SIGKILL');
      rmSync(unit, { force: true });
      rmSync(wants, { force: true });
    }
  }, 120000);
});

describe('booting the busybox image (busybox init)', () => {
  it('reaches the shell on the console; busybox poweroff ends it with 0', async () => {
    const s = onPty('nspawn', ['-D', busybox, '-b']);
    await s.expect(/\/ # /, 'the shell prompt');
    const out = await shell(s, 'cat /proc/1/comm; readlink /proc/1/exe; readlink /dev/console');
    expect(out.split('\n').filter(Boolean)).toEqual(['init', '/bin/busybox', 'pts/0']);
    s.send('poweroff\r');
    expect(await s.wait('busybox poweroff')).toBe(0);
    expect(s.text).toContain('The system is going down NOW!');
    expect(s.text).toContain('Container bbox has been shut down.');
    expectNothingLeft(busybox, 'bbox');
  }, 60000);

  it('the securetty pitfall: login refuses root on pts/0 until /etc/securetty lists it', async () => {
    // busybox login on the console (root has an empty password in this image), and a securetty without pts/N
    writeFileSync(join(busybox, 'etc/inittab'), '::respawn:/bin/login\n::shutdown:/bin/sync\n');
    writeFileSync(join(busybox, 'etc/securetty'), 'console\ntty1\n');
    try {
      const s = onPty('nspawn', ['-D', busybox, '-b']);
      await s.expect(/^\S+ login: /m, 'the login prompt');
      s.send('root\r');
      await s.expect(/Login incorrect/, 'the refusal');
      // the console is /dev/pts/0 (/dev/console links to it): allowing it fixes the login, no reboot needed
      appendFileSync(join(busybox, 'etc/securetty'), 'pts/0\n');
      await s.expect(/^\S+ login: /m, 'the next login prompt');
      s.send('root\r');
      await s.expect(/~ # /, "root's shell");
      s.send('poweroff\r');
      expect(await s.wait('poweroff')).toBe(0);
      expectNothingLeft(busybox, 'bbox');
    } finally {
      rmSync(join(busybox, 'etc/securetty'), { force: true });
      writeFileSync(join(busybox, 'etc/inittab'), '::respawn:-/bin/sh\n::ctrlaltdel:/bin/poweroff\n::shutdown:/bin/sync\n');
    }
  }, 60000);
});
