/**
 * --console=passive side by side with systemd-nspawn 252. 252 reads nothing of the container's pty while it runs,
 * and at its end copies what the pty still holds to its stdout (copy_bytes(master, STDOUT_FILENO) in main(), after
 * run_container() said how the container ended). What comes out must be the same bytes under both (and under ours
 * handed over and supervised): nothing while the container runs, then the pty's output (CR LF, binary bytes, no
 * final newline added), after the message about the end when stdout and stderr are one file; a payload that writes
 * more than the pty buffers waits until it is killed; -b with busybox init; a reboot; stdout a terminal.
 *
 * Needs root and /usr/bin/systemd-nspawn; it fails, never skips, without them.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxTree } from './helpers/busybox-tree.js';
import { COMMON_FLAGS, isSystemdNoise, makeTempDir, requireRootAndSystemdNspawn, type Tool, TOOL_ENV, toolCommand } from './helpers/containers.js';
import { sleep } from './helpers/in-host.js';

const NAME = 'pk-passive';

/** The runs compared: 252, ours (handed over where it can be), ours supervised by Node. */
const VARIANTS: readonly { label: string; tool: Tool; env?: NodeJS.ProcessEnv }[] = [
  { label: 'systemd-nspawn', tool: 'systemd-nspawn' },
  { label: 'nspawn', tool: 'nspawn' },
  { label: 'nspawn (supervised)', tool: 'nspawn', env: { NSPAWN_HANDOFF: '0' } },
];

let tmp: { dir: string; remove: () => string[] };
let seq = 0;
beforeAll(() => {
  requireRootAndSystemdNspawn();
  tmp = makeTempDir('nspawn-passive-');
});
afterAll(() => {
  // every run has ended (each test waits for its runs): nothing may be left mounted below the temp dir
  if (tmp) expect(tmp.remove()).toEqual([]);
});

/** A fresh busybox tree; SETUP adds to it. */
function tree(setup?: (dir: string) => void): string {
  const dir = makeBusyboxTree(join(tmp.dir, `tree${seq++}`), { probe: false });
  setup?.(dir);
  return dir;
}

/** A busybox tree that -b boots: busybox init at /sbin/init with INITTAB. */
const bootable = (inittab: string) =>
  tree((d) => {
    symlinkSync('../bin/busybox', join(d, 'sbin/init'));
    writeFileSync(join(d, 'etc/inittab'), inittab);
  });

interface Ended {
  status: number | null;
  signal: NodeJS.Signals | null;
  out: Buffer;
  /** stderr without 252's noise lines ('' when merged into out) */
  err: string;
}

interface Run {
  pid: number;
  /** bytes on stdout so far */
  outSize: () => number;
  ended: Promise<Ended>;
}

/**
 * Starts one variant with --console=passive -M NAME and ARGS; stdout and stderr go to files (the same one when
 * MERGED). Killed after 60 s, whatever it does.
 */
function start(v: (typeof VARIANTS)[number], args: string[], opts: { merged?: boolean; flags?: readonly string[] } = {}): Run {
  const base = join(tmp.dir, `run${seq++}`);
  const outFile = `${base}.out`;
  const errFile = opts.merged ? outFile : `${base}.err`;
  const out = openSync(outFile, 'w');
  const err = opts.merged ? out : openSync(errFile, 'w');
  const [cmd, pre] = toolCommand(v.tool);
  const argv = [...pre, ...(opts.flags ?? COMMON_FLAGS), '--console=passive', '-M', NAME, ...args];
  const child = spawn(cmd, argv, { stdio: ['ignore', out, err], env: { ...TOOL_ENV, ...v.env } });
  closeSync(out);
  if (!opts.merged) closeSync(err);
  const killer = setTimeout(() => child.kill('SIGKILL'), 60000);
  const ended = new Promise<Ended>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (status, signal) => {
      clearTimeout(killer);
      const errText = opts.merged ? '' : readFileSync(errFile, 'utf8');
      resolve({ status, signal, out: readFileSync(outFile), err: errText.split('\n').filter((l) => !isSystemdNoise(l)).join('\n') });
    });
  });
  return { pid: child.pid!, outSize: () => statSync(outFile).size, ended };
}

/** Waits (up to 30 s) until PATH exists. */
async function waitFor(path: string): Promise<void> {
  for (let i = 0; i < 3000 && !existsSync(path); i++) await sleep(10);
  if (!existsSync(path)) throw new Error(`${path} did not appear`);
}

/** Runs every variant (one after the other) in the same TREE with ARGS to its end. */
async function each(treeDir: string, args: string[], opts: { merged?: boolean } = {}): Promise<Map<string, Ended>> {
  const seen = new Map<string, Ended>();
  for (const v of VARIANTS) seen.set(v.label, await start(v, ['-q', '-D', treeDir, ...args], opts).ended);
  return seen;
}

const bytes = (s: string) => Buffer.from(s, 'latin1');

describe('--console=passive: the console is read at the end only', () => {
  it('nothing comes out while the container runs, all of it at its end', async () => {
    for (const v of VARIANTS) {
      const dir = tree();
      const r = start(v, ['-q', '-D', dir, '/bin/sh', '-c', 'echo a; touch /var/a-written; sleep 2; echo b']);
      await waitFor(join(dir, 'var/a-written'));
      await sleep(300);
      expect({ variant: v.label, whileRunning: r.outSize() }).toEqual({ variant: v.label, whileRunning: 0 });
      const e = await r.ended;
      expect({ variant: v.label, status: e.status, out: e.out.toString('latin1'), err: e.err }).toEqual({ variant: v.label, status: 0, out: 'a\r\nb\r\n', err: '' });
    }
  }, 90000);

  it('stdout and stderr one file: the message about the end comes first, then the rest', async () => {
    const dir = tree();
    const seen = new Map<string, string[]>();
    for (const v of VARIANTS) {
      const e = await start(v, ['-D', dir, '/bin/sh', '-c', 'echo a; exit 3'], { merged: true }).ended;
      expect(e.status).toBe(3);
      seen.set(v.label, e.out.toString('latin1').split('\n').filter((l) => !isSystemdNoise(l)));
    }
    const ref = seen.get('systemd-nspawn')!;
    expect(ref.slice(0, 1)).toEqual([`Spawning container ${NAME} on ${dir}.`]);
    expect(ref.slice(-3)).toEqual([`Container ${NAME} failed with error code 3.`, 'a\r', '']);
    for (const [label, got] of seen) expect({ label, got }).toEqual({ label, got: ref });
  }, 90000);

  it('binary bytes, CRs and a last line without a newline come out as the pty gives them', async () => {
    const seen = await each(tree(), ['/bin/sh', '-c', 'printf "x\\ry\\000z\\377\\t|\\n\\033[31mred\\r\\n"; printf nonl']);
    for (const [label, e] of seen)
      expect({ label, status: e.status, out: e.out }).toEqual({ label, status: 0, out: bytes('x\ry\0z\xff\t|\r\n\x1b[31mred\r\r\nnonl') });
  }, 90000);

  it('what a process that outlives the payload would write later never comes: the container ends with PID 1', async () => {
    for (const pid2 of [false, true]) {
      const seen = await each(tree(), [...(pid2 ? ['-a'] : []), '/bin/sh', '-c', '(sleep 1; echo late) & echo early']);
      for (const [label, e] of seen) expect({ label, pid2, status: e.status, out: e.out.toString('latin1') }).toEqual({ label, pid2, status: 0, out: 'early\r\n' });
    }
  }, 90000);

  it('more than the pty buffers: the payload waits until it is killed; what the pty held comes out', async () => {
    for (const v of VARIANTS) {
      const dir = tree();
      const r = start(v, ['-q', '-D', dir, '/bin/sh', '-c', 'touch /var/writing; head -c 100000 /dev/zero | tr "\\000" x; touch /var/wrote']);
      await waitFor(join(dir, 'var/writing'));
      await sleep(1500);
      // 100 kB into a pty that is read takes well under a millisecond: the writer is blocked
      expect({ variant: v.label, wrote: existsSync(join(dir, 'var/wrote')), whileRunning: r.outSize() }).toEqual({ variant: v.label, wrote: false, whileRunning: 0 });
      process.kill(r.pid, 'SIGTERM');
      const e = await r.ended;
      expect({ variant: v.label, status: e.status, err: e.err }).toEqual({ variant: v.label, status: 1, err: `Container ${NAME} terminated by signal KILL.\n` });
      // the pty holds its line discipline's buffer and its flip buffers: 10240 or 12288 bytes here under both
      const out = e.out.toString('latin1');
      expect(out).toMatch(/^x+$/);
      expect({ variant: v.label, enough: out.length >= 4096 && out.length <= 16384 }).toEqual({ variant: v.label, enough: true });
    }
  }, 90000);

  it('SIGHUP (the terminal went away): nothing comes out', async () => {
    for (const v of VARIANTS) {
      const dir = tree();
      const r = start(v, ['-q', '-D', dir, '/bin/sh', '-c', 'echo a; touch /var/a-written; sleep 2; touch /var/ended']);
      await waitFor(join(dir, 'var/a-written'));
      process.kill(r.pid, 'SIGHUP');
      const e = await r.ended;
      // (252 dies of it, status 129; ours kills the container and stays to remove its cgroup: exit 1, on purpose)
      expect({ variant: v.label, out: e.out.toString('latin1') }).toEqual({ variant: v.label, out: '' });
      // 252's container runs on to its end without it (its reference cgroup must be empty after the file)
      if (v.tool === 'systemd-nspawn') {
        await waitFor(join(dir, 'var/ended'));
        await sleep(200);
        // 252 died with its image lock held: the lock file it made for the tree (inode-DEV:INO) stays; it is
        // this test's tree's, so it goes here
        const st = statSync(dir);
        rmSync(`/run/systemd/nspawn/locks/inode-${st.dev}:${st.ino}`, { force: true });
      }
    }
  }, 90000);

  it('-b with busybox init: its console from the start to the poweroff at the end', async () => {
    const seen = new Map<string, Ended>();
    for (const v of VARIANTS) {
      const dir = bootable("::sysinit:/bin/echo sysinit\n::respawn:/bin/sh -c 'echo respawned; touch /var/up; exec sleep 1000'\n");
      const r = start(v, ['-q', '-D', dir, '-b', '--kill-signal=SIGUSR2']);
      await waitFor(join(dir, 'var/up'));
      expect({ variant: v.label, whileRunning: r.outSize() }).toEqual({ variant: v.label, whileRunning: 0 });
      process.kill(r.pid, 'SIGTERM'); // SIGUSR2 to busybox init: it powers off
      const e = await r.ended;
      expect({ variant: v.label, status: e.status, err: e.err }).toEqual({
        variant: v.label,
        status: 0,
        err: 'Trying to halt container. Send SIGTERM again to trigger immediate termination.\n',
      });
      seen.set(v.label, e);
    }
    const ref = seen.get('systemd-nspawn')!.out.toString('latin1');
    expect(ref).toMatch(/^sysinit\r\nrespawned\r\n.*Requesting system poweroff\r\n$/s);
    for (const [label, e] of seen) expect({ label, out: e.out.toString('latin1') }).toEqual({ label, out: ref });
  }, 120000);

  it('a reboot with --keep-unit: exit 133 and the rest of that boot', async () => {
    const inittab = "::sysinit:/bin/sh -c 'if [ -e /var/rebooted ]; then echo second; poweroff -f; else touch /var/rebooted; echo first; reboot -f; fi'\n";
    for (const v of VARIANTS) {
      const e = await start(v, ['-q', '-D', bootable(inittab), '-b']).ended;
      expect({ variant: v.label, status: e.status, out: e.out.toString('latin1'), err: e.err }).toEqual({ variant: v.label, status: 133, out: 'first\r\n', err: '' });
    }
    // Without --keep-unit 252 restarts in place and leaves the first boot's pty unread (run_container() takes the
    // next master over the old one); it needs the system bus for that (its scope), which this machine's tests do
    // not have outside the systemd host: ours alone, from that reading of 252.
    const flags = COMMON_FLAGS.filter((f) => f !== '--keep-unit');
    const e = await start(VARIANTS[1]!, ['-q', '-D', bootable(inittab), '-b'], { flags }).ended;
    expect({ status: e.status, out: e.out.toString('latin1'), err: e.err }).toEqual({ status: 0, out: 'second\r\n', err: '' });
  }, 120000);

  it('stdout a terminal: the same rest, through the terminal', async () => {
    const dir = tree();
    const seen = new Map<string, string>();
    for (const v of VARIANTS) {
      const argv = [...toolCommand(v.tool).flat(), ...COMMON_FLAGS, '-q', '--console=passive', '-M', NAME, '-D', dir, '/bin/sh', '-c', 'echo a; echo b'];
      const line = argv.map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
      const r = await execa('script', ['-qfec', line, '/dev/null'], {
        input: '',
        env: { ...TOOL_ENV, ...v.env },
        extendEnv: false,
        timeout: 60000,
        reject: false,
        stripFinalNewline: false,
      });
      expect({ variant: v.label, code: r.exitCode }).toEqual({ variant: v.label, code: 0 });
      seen.set(v.label, String(r.stdout).split('\n').filter((l) => !isSystemdNoise(l)).join('\n'));
    }
    // the container's pty makes CR LF, the terminal's output processing one CR more
    for (const [label, out] of seen) expect({ label, out }).toEqual({ label, out: 'a\r\r\nb\r\r\n' });
  }, 90000);
});
