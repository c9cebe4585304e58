/**
 * The nspawn command as a user runs it: options, errors, exit codes, signals and the console on a real pty.
 * Root integration tests on a busybox tree.
 */
import { spawn } from 'node:child_process';
import { execa, execaSync } from 'execa';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CAPABILITIES_NOT_IN_BOUNDING_SET, capabilityQuintet, containerCapabilities, readHostCapabilities } from '@nspawn/runtime';

const REPO = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const NSPAWN = join(REPO, 'apps/cli/bin/nspawn');
let dir = '';
let tree = '';

beforeAll(() => {
  if (process.getuid?.() !== 0) throw new Error('these tests run nspawn and must run as root');
  dir = mkdtempSync('/var/tmp/nspawn-cli-');
  tree = join(dir, 'box');
  execaSync(join(REPO, 'scripts/make-busybox-tree.sh'), [tree]);
});
afterAll(() => {
  const left = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => dir && l.includes(dir));
  rmSync(dir, { recursive: true, force: true });
  expect(left).toEqual([]);
});

/** Runs nspawn to its end (asynchronously: a container takes a while, and a synchronous wait blocks the worker). */
async function nspawn(args: string[], input?: string) {
  const r = await execa(NSPAWN, args, { timeout: 30000, input: input ?? '', reject: false, stripFinalNewline: false });
  return { code: r.exitCode ?? null, out: String(r.stdout), err: String(r.stderr) };
}

/** Runs a shell command line on a fresh pty made by script(1), as a terminal user would. */
function onPty(cmdline: string, feed?: (write: (s: string) => void, output: () => string) => void) {
  return new Promise<{ code: number | null; out: string }>((done) => {
    const child = spawn('script', ['-qfec', cmdline, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    feed?.((s) => child.stdin.write(s), () => out);
    const timer = setTimeout(() => child.kill('SIGKILL'), 20000);
    child.on('close', (code) => {
      clearTimeout(timer);
      // the host pty echoes a NUL as "^@" when it goes raw; systemd-nspawn shows the same on script(1)'s pty
      done({ code, out: out.replace(/\^@/g, '') });
    });
  });
}

describe('options and errors', () => {
  it('--help groups the options like systemd-nspawn', async () => {
    const r = await nspawn(['--help']);
    expect(r.code).toBe(0);
    for (const g of ['Image:', 'Execution:', 'System Identity:', 'User Namespacing:', 'Networking:', 'Security:', 'Mounts:', 'Input/Output:'])
      expect(r.out).toContain(g);
  });
  it('--OPTION=help lists the values exactly as systemd-nspawn 252 does', async () => {
    for (const o of ['console', 'volatile', 'private-users-ownership', 'kill-signal', 'rlimit', 'resolv-conf', 'timezone', 'capability', 'drop-capability']) {
      const ours = await nspawn([`--${o}=help`]);
      const theirs = execaSync('systemd-nspawn', [`--${o}=help`], { reject: false, stripFinalNewline: false });
      expect({ o, code: ours.code, out: ours.out }).toEqual({ o, code: theirs.exitCode, out: theirs.stdout });
    }
  });
  it('--version', async () => {
    expect((await nspawn(['--version'])).out).toMatch(/^nspawn \d+\.\d+\.\d+/);
  });
  it('an unknown option, a bad value and a missing directory each give one line and exit 1', async () => {
    const cases: Array<[string[], string]> = [
      [['--frobnicate'], "nspawn: unrecognized option '--frobnicate'\n"],
      [['-D', tree, '--rlimit=NOFILE=abc', '/bin/true'], 'Failed to parse resource limit: abc\n'],
      [['-D', tree, '-M', 'bad_name!', '/bin/true'], 'Invalid machine name: bad_name!\n'],
      [['-D', join(dir, 'missing'), '/bin/true'], `Failed to resolve path ${join(dir, 'missing')}: No such file or directory\n`],
      [['-D', dir, '/bin/true'], `Directory ${dir} doesn't look like it has an OS tree (/usr/ directory is missing). Refusing.\n`],
      [['-b', '-a', '-D', tree], '--boot and --as-pid2 may not be combined.\n'],
      [['-D', tree, '--root-hash=00', '/bin/true'], '--root-hash is not supported yet by this nspawn build.\n'],
    ];
    for (const [args, err] of cases) {
      const r = await nspawn(args);
      expect({ args, code: r.code, err: r.err }).toEqual({ args, code: 1, err });
    }
  });
});

describe('running', () => {
  it('passes the exit code and prints systemd-nspawn\'s status lines', async () => {
    const r = await nspawn(['-D', tree, '/bin/sh', '-c', 'exit 7']);
    expect(r.code).toBe(7);
    // like systemd-nspawn, a warning when this host's bounding set lacks some of the retained capabilities
    const host = readHostCapabilities()!;
    const warn = capabilityQuintet(containerCapabilities({}), 0, host.bounding, host.lastCap).dropped !== 0n;
    expect(r.err).toBe(
      `Spawning container box on ${tree}.\nPress ^] three times within 1s to kill container.\n${warn ? `${CAPABILITIES_NOT_IN_BOUNDING_SET}\n` : ''}` +
        'Container box failed with error code 7.\n',
    );
  });
  it('-q is quiet and the console is a pty when stdout is not a terminal (read-only mode)', async () => {
    const r = await nspawn(['-q', '-D', tree, '/bin/sh', '-c', 'tty; readlink /dev/console']);
    expect(r.code).toBe(0);
    expect(r.err).toBe('');
    expect(r.out).toBe('/dev/pts/0\r\npts/0\r\n');
  });
  it('--console=passive gives the container a console that nothing reads while it runs: its rest comes at the end', async () => {
    const r = await nspawn(['-q', '-D', tree, '--console=passive', '/bin/sh', '-c', 'echo held; readlink /dev/console; exit 4']);
    expect(r).toMatchObject({ code: 4, out: 'held\r\npts/0\r\n', err: '' });
  });
  it('--pipe passes our stdio straight through', async () => {
    const r = await nspawn(['-D', tree, '-P', '/bin/sh', '-c', 'cat; tty || true'], 'hello\n');
    expect(r.out).toBe('hello\nnot a tty\n');
  });
  it('SIGTERM without --kill-signal kills the container at once', async () => {
    const child = spawn(NSPAWN, ['-q', '-D', tree, '-P', '/bin/sh', '-c', 'echo up; exec sleep 30'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    // the signal once the payload runs (not a fixed delay: a loaded machine starts slower)
    await new Promise<void>((r) => child.stdout.on('data', (d: Buffer) => d.toString().includes('up') && r()));
    child.kill('SIGTERM');
    const code = await new Promise((r) => child.on('close', r));
    expect(code).toBe(1);
    expect(err).toBe('Container box terminated by signal KILL.\n');
  });
  it('--kill-signal=SIGRTMIN+4 powers a stub init off: exit 0', async () => {
    const child = spawn(NSPAWN, ['-D', tree, '-a', '--kill-signal=SIGRTMIN+4', '-P', '/bin/sh', '-c', 'echo up; exec sleep 30'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    // the signal once the stub init runs the payload (not a fixed delay: a loaded machine starts slower)
    await new Promise<void>((r) => child.stdout.on('data', (d: Buffer) => d.toString().includes('up') && r()));
    child.kill('SIGINT');
    const code = await new Promise((r) => child.on('close', r));
    expect(code).toBe(0);
    expect(err).toBe('Trying to halt container. Send SIGTERM again to trigger immediate termination.\n');
  });
});

describe('console on a terminal', () => {
  it('the container gets its own pty with our window size, and the terminal is restored', async () => {
    const r = await onPty(`stty rows 33 cols 77; ${NSPAWN} -q -D ${tree} /bin/sh -c 'tty; stty size'; stty -a | grep -o -- '-\\?icanon'`);
    expect(r.code).toBe(0);
    const lines = r.out.split(/\r?\n/).filter(Boolean);
    expect(lines).toEqual(['/dev/pts/0', '33 77', 'icanon']);
  });
  it('follows window size changes (SIGWINCH)', async () => {
    // the host terminal is resized once the container has shown its first size (the container writes /winch-ready
    // into its tree), and the container then waits up to 10 s for its own size to change: no fixed delays
    const ready = join(tree, 'winch-ready');
    try {
      const r = await onPty(
        `stty rows 20 cols 60; (while [ ! -e ${ready} ]; do sleep 0.05; done; stty rows 50 cols 100 </dev/tty) & ` +
          `${NSPAWN} -q -D ${tree} /bin/sh -c 'stty size; : > /winch-ready; i=0; while [ "$(stty size)" = "20 60" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; stty size'`,
      );
      expect(r.out.split(/\r?\n/).filter(Boolean)).toEqual(['20 60', '50 100']);
    } finally {
      rmSync(ready, { force: true });
    }
  });
  it('input reaches the container', async () => {
    const r = await onPty(`${NSPAWN} -q -D ${tree} /bin/sh -c 'read x; echo got:$x'`, (write, output) => {
      const t = setInterval(() => {
        if (output().length >= 0) {
          write('abc\r');
          clearInterval(t);
        }
      }, 300);
    });
    expect(r.out).toContain('got:abc');
  });
  it('--console=read-only shows the output but does not pass input on', async () => {
    const r = await onPty(`${NSPAWN} -q --console=read-only -D ${tree} /bin/sh -c 'read -t 1 x; echo "got:$x"'`, (write) => {
      setTimeout(() => write('abc\r'), 300);
    });
    expect(r.out).toContain('got:');
    expect(r.out).not.toContain('got:abc');
  });
  it('^] three times within 1s kills the container', async () => {
    const r = await onPty(`${NSPAWN} -D ${tree} /bin/sh -c 'echo started; sleep 30'`, (write, output) => {
      const t = setInterval(() => {
        if (output().includes('started')) {
          clearInterval(t);
          write('\x1d\x1d\x1d');
        }
      }, 50);
    });
    expect(r.code).toBe(1);
    expect(r.out).toContain('Container box terminated by signal KILL.');
  });
});

describe('.nspawn files', () => {
  it('a trusted file in /run/systemd/nspawn applies; the command line wins where it sets something', async () => {
    const name = `nspawn-cli-test-${process.pid}`;
    const file = `/run/systemd/nspawn/${name}.nspawn`;
    execaSync('mkdir', ['-p', '/run/systemd/nspawn']);
    execaSync('sh', ['-c', `printf '%s\\n' '[Exec]' 'Environment=FROMFILE=1 SHARED=file' 'Hostname=filehost' 'Bogus=1' '[Files]' 'TemporaryFileSystem=/scratch' > ${file}`]);
    try {
      const r = await nspawn(['-q', '-D', tree, '-M', name, '-P', '-E', 'SHARED=cli', '/bin/sh', '-c', 'echo $FROMFILE $SHARED $(hostname); grep -c " /scratch " /proc/self/mountinfo']);
      // the command line set the environment, so the file's Environment= is not used at all (systemd's mask)
      expect(r.out).toBe('cli filehost\n1\n');
      expect(r.err).toBe(`${file}:4: Unknown key 'Bogus' in section [Exec], ignoring.\n`);
      expect(r.code).toBe(0);
    } finally {
      rmSync(file, { force: true });
    }
  });
  it('privileged settings of an untrusted file beside the image are ignored with systemd\'s message', async () => {
    const file = join(dir, 'box.nspawn');
    execaSync('sh', ['-c', `printf '%s\\n' '[Exec]' 'Environment=OK=yes' '[Files]' 'Bind=/etc:/mnt/hostetc' > ${file}`]);
    try {
      const r = await nspawn(['-q', '-D', tree, '-P', '/bin/sh', '-c', 'echo $OK; ls /mnt/hostetc 2>/dev/null | wc -l']);
      expect(r.out).toBe('yes\n0\n');
      expect(r.err).toBe(`Ignoring TemporaryFileSystem=, Bind= and BindReadOnly= settings, file ${file} is not trusted.\n`);
    } finally {
      rmSync(file, { force: true });
    }
  });
  it('--settings=no skips the file', async () => {
    const file = join(dir, 'box.nspawn');
    execaSync('sh', ['-c', `printf '%s\\n' '[Exec]' 'Environment=OK=yes' > ${file}`]);
    try {
      expect((await nspawn(['-q', '-D', tree, '-P', '--settings=no', '/bin/sh', '-c', 'echo x$OK'])).out).toBe('x\n');
    } finally {
      rmSync(file, { force: true });
    }
  });
});
