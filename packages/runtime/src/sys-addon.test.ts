import { execaSync } from 'execa';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadSysAddon, sysAddonCandidates } from './sys-addon.js';

describe('the sys addon (nspawn-sys.node)', () => {
  const built = fileURLToPath(new URL('../native/build/nspawn-sys.node', import.meta.url));
  const addonJs = fileURLToPath(new URL('../dist/sys-addon.js', import.meta.url));
  /** runs SCRIPT (ESM, with `addon`: loadSysAddon() of the one built here) in a fresh Node */
  const node = (script: string) => {
    const r = execaSync(process.execPath, ['--input-type=module', '-e', `import { loadSysAddon } from ${JSON.stringify(addonJs)};\nconst addon = loadSysAddon([${JSON.stringify(built)}]);\n${script}`], {
      reject: false,
      stripFinalNewline: false,
    });
    return { status: r.exitCode ?? null, stdout: String(r.stdout), stderr: String(r.stderr) };
  };

  it('is found beside a bundle first, then in native/build and native/prebuilt', () => {
    expect(sysAddonCandidates('/opt/x/dist')).toEqual([
      `/opt/x/dist/nspawn-sys-linux-${process.arch}.node`,
      '/opt/x/dist/nspawn-sys.node',
      '/opt/x/native/build/nspawn-sys.node',
      `/opt/x/native/prebuilt/nspawn-sys-linux-${process.arch}.node`,
    ]);
  });

  it('skips what is missing or does not load, and is undefined when nothing does', () => {
    const dir = mkdtempSync('/tmp/nspawn-test-addon-');
    try {
      writeFileSync(join(dir, 'bad.node'), 'not an ELF file');
      expect(loadSysAddon([join(dir, 'missing.node'), join(dir, 'bad.node')])).toBeUndefined();
      expect(Object.keys(loadSysAddon([join(dir, 'bad.node'), built]) ?? {}).sort()).toEqual(['execve', 'image', 'keepOnExec', 'memfd', 'ofdLockExclusive', 'ofdLockWait']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('each call refuses bad arguments with EINVAL and its usage (native/sys-addon.c call_args())', () => {
    const r = node(`import { createRequire } from 'node:module';
const raw = createRequire(import.meta.url)(${JSON.stringify(built)});
const calls = [
  ['execve', []], ['execve', [1, 2, 3]], ['keepOnExec', [-1]], ['ofdLock', ['x']], ['ioctl', [0, 1]], ['ioctl', [0, 'x', 0]], ['ioctl', [0, 1, 's']],
  ['flock', [0, 'x']], ['fsmount', ['tmpfs', [1], 0]], ['fsmount', [1, [], 0]], ['memfd', ['n', 5]],
];
for (const [f, a] of calls) try { raw[f](...a); console.log(f, 'no error'); } catch (e) { console.log(f, e.code, e.message); }`);
    expect(r.stdout.split('\n'), r.stderr).toEqual([
      'execve EINVAL execve(file, argv, envp[, blocked]) takes three or four arguments',
      'execve EINVAL execve(): file must be a string, argv and envp arrays of strings',
      'keepOnExec EINVAL a file descriptor is expected',
      'ofdLock EINVAL a file descriptor is expected',
      'ioctl EINVAL ioctl(fd, req, arg) takes a descriptor, a request and a Buffer or a number',
      'ioctl EINVAL ioctl(fd, req, arg) takes a descriptor, a request and a Buffer or a number',
      'ioctl EINVAL ioctl(): the argument is neither a Buffer nor a number',
      'flock EINVAL flock(fd, op) takes a descriptor and an operation',
      'fsmount EINVAL fsmount(fstype, [key, value...], attrs) takes a type, pairs of options and attributes',
      'fsmount EINVAL fsmount(): the file system type is not a string',
      'memfd EINVAL memfd(name, bytes) takes a name and a Buffer',
      '',
    ]);
  });

  it('memfd holds the bytes from its start, sealed, and goes with an exec (the hand-over\'s plan)', () => {
    const r = node(`const fd = addon.memfd('nspawn-plan', Buffer.from('plan\\nbytes'));
addon.execve('/bin/bash', ['bash', '--norc', '-c', 'cat <&' + fd + '; echo; readlink /proc/self/fd/' + fd + '; { printf x >&' + fd + '; } 2>/dev/null && echo written || echo refused'], { PATH: '/usr/bin:/bin' });`);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^plan\nbytes\n\/memfd:nspawn-plan \(deleted\)\nrefused\n$/); // refused: F_SEAL_WRITE
  });

  it('execve replaces the process with the program, the environment and the standard streams passed on', () => {
    const r = node(`addon.execve('/bin/sh', ['sh', '-c', 'echo "$X $$"; echo err >&2'], { X: 'from-node', PATH: '/bin' });`);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toMatch(/^from-node \d+$/);
    expect(r.stderr).toBe('err\n');
  });

  it('execve blocks the signals it is given from before the exec on: the program starts with them blocked', () => {
    // SIGTERM (15) and SIGHUP (1): bits 14 and 0 of the blocked mask
    // (cat: a shell would set its own mask)
    const sigBlk = (out: string) => out.split('\n').find((l) => l.startsWith('SigBlk:'));
    const r = node(`addon.execve('/bin/cat', ['cat', '/proc/self/status'], {}, [15, 1]);`);
    expect(sigBlk(r.stdout)).toBe('SigBlk:\t0000000000004001');
    const plain = node(`addon.execve('/bin/cat', ['cat', '/proc/self/status'], {});`);
    expect(sigBlk(plain.stdout)).toBe('SigBlk:\t0000000000000000');
  });

  it('execve throws when the exec fails (process.execve() would abort Node), with the errno as its code', () => {
    const r = node(`try { addon.execve('/nonexistent/x', ['x'], {}); } catch (e) { console.log(e.code, e.message); }`);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('ENOENT No such file or directory');
  });

  it('ofdLockExclusive takes an exclusive lock of the open file description: another one (this process or not) is refused', () => {
    const dir = mkdtempSync('/tmp/nspawn-test-addon-');
    try {
      const file = join(dir, 'lock');
      const r = node(`import { openSync, closeSync } from 'node:fs';
const a = openSync(${JSON.stringify(file)}, 'w');
const b = openSync(${JSON.stringify(file)}, 'r+');
console.log(addon.ofdLockExclusive(a), addon.ofdLockExclusive(b), addon.ofdLockExclusive(a));
closeSync(a);
console.log(addon.ofdLockExclusive(b));
try { addon.ofdLockExclusive(12345); } catch (e) { console.log(e.code); }`);
      expect(r.stdout, r.stderr).toBe('true false true\ntrue\nEBADF\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the image calls: shared and exclusive OFD locks, ioctl by pointer and by value, flock, a detached mount (errors name the step)", () => {
    expect(process.getuid?.(), 'needs root: /dev/loop-control and fsmount').toBe(0);
    const dir = mkdtempSync('/tmp/nspawn-test-addon-');
    try {
      const file = join(dir, 'lock');
      const r = node(`import { openSync, closeSync, readdirSync, statSync } from 'node:fs';
const im = addon.image;
const a = openSync(${JSON.stringify(file)}, 'w+');
const b = openSync(${JSON.stringify(file)}, 'r+');
const c = openSync(${JSON.stringify(file)}, 'r+');
console.log(im.ofdLock(a, true), im.ofdLock(b, true), im.ofdLock(c, false));
closeSync(a); closeSync(b);
console.log(im.ofdLock(c, false));
// BLKGETSIZE64 of a file: ENOTTY; FIONREAD (by pointer) of a file; LOOP_CTL_GET_FREE (by value): a number
try { im.ioctl(c, 0x80081272, Buffer.alloc(8)); } catch (e) { console.log(e.code); }
const n = Buffer.alloc(4); console.log(im.ioctl(c, 0x541b, n), n.readInt32LE(0));
const ctl = openSync('/dev/loop-control', 'r');
console.log(im.ioctl(ctl, 0x4c82, 0) >= 0);
im.flock(ctl, 2); im.flock(ctl, 8);
try { im.flock(12345, 2); } catch (e) { console.log(e.code); }
const m = im.fsmount('tmpfs', [['size', '1m'], ['mode', '0710']], 1);
console.log((statSync('/proc/self/fd/' + m).mode & 0o7777).toString(8), readdirSync('/proc/self/fd/' + m).length);
closeSync(m);
for (const [t, o] of [['nspawn-nofs', []], ['tmpfs', [['nspawn-bogus', null]]]]) try { im.fsmount(t, o, 0); } catch (e) { console.log(e.code, e.message); }`);
      expect(r.stdout, r.stderr).toBe('true true false\ntrue\nENOTTY\n0 0\ntrue\nEBADF\n710 0\nENODEV fsopen: ENODEV\nEINVAL option nspawn-bogus: EINVAL\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('ofdLockWait waits for a lock another process holds, and takes it once that one lets go', () => {
    const dir = mkdtempSync('/tmp/nspawn-test-addon-');
    try {
      const file = join(dir, 'lock');
      // a second Node holds the lock for 400 ms, from before this one asks for it
      const r = node(`import { openSync } from 'node:fs';
import { spawn } from 'node:child_process';
const holder = spawn(process.execPath, ['--input-type=module', '-e', \`import { loadSysAddon } from \${JSON.stringify(${JSON.stringify(addonJs)})};
import { openSync } from 'node:fs';
const a = loadSysAddon([\${JSON.stringify(${JSON.stringify(built)})}]);
a.ofdLockExclusive(openSync(\${JSON.stringify(${JSON.stringify(file)})}, 'w'));
console.log('held');
setTimeout(() => {}, 400);\`]);
await new Promise((res) => holder.stdout.once('data', res));
const fd = openSync(${JSON.stringify(file)}, 'r+');
console.log(addon.ofdLockExclusive(fd));
const t0 = Date.now();
addon.ofdLockWait(fd);
console.log(Date.now() - t0 >= 200, addon.ofdLockExclusive(fd));`);
      expect(r.stdout, r.stderr).toBe('false\ntrue true\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keepOnExec lets a descriptor and its lock go with an exec', () => {
    const dir = mkdtempSync('/tmp/nspawn-test-addon-');
    try {
      const file = join(dir, 'lock');
      // the program exec'd sees the descriptor open, and the lock still held (an OFD lock in /proc/locks, on the file)
      const r = node(`import { openSync } from 'node:fs';
const fd = openSync(${JSON.stringify(file)}, 'w');
addon.ofdLockExclusive(fd);
addon.keepOnExec(fd);
addon.execve('/bin/sh', ['sh', '-c', 'test -e /proc/self/fd/' + fd + ' && echo open; grep OFDLCK /proc/locks | grep -q ":$(stat -c %i ${file}) " && echo locked'], { PATH: '/usr/bin:/bin' });`);
      expect(r.stdout, r.stderr).toBe('open\nlocked\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
