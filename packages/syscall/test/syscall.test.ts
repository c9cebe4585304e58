// Root tests on the real kernel: locks (OFD and the flock() fallback, across processes), confined opens (openat2
// and the O_NOFOLLOW walk), metadata through descriptors, and removal through descriptors.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, lstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  AT_EMPTY_PATH,
  AT_SYMLINK_NOFOLLOW,
  fchmodPath,
  fchownAt,
  fgetxattr,
  flistxattr,
  fsetxattr,
  futimens,
  isCloseOnExec,
  keepOnExec,
  lgetxattrAt,
  linkAt,
  lockFd,
  lockHeldElsewhere,
  lsetxattrAt,
  lstatAt,
  makeLockFile,
  makedev,
  mkdirAt,
  mknodAt,
  O_CREAT,
  O_DIRECTORY,
  O_EXCL,
  O_NOFOLLOW,
  O_PATH,
  O_RDONLY,
  O_WRONLY,
  openBeneath,
  removeTreeAt,
  RENAME_EXCHANGE,
  RENAME_NOREPLACE,
  renameAt2,
  S_IFCHR,
  S_IFIFO,
  setOpenat2,
  statAt,
  statFd,
  symlinkAt,
  utimensAt,
} from '../src/index.js';

const DIST = resolve(import.meta.dirname, '../dist/index.js');
let dir: string;
beforeEach(() => {
  dir = mkdtempSync('/tmp/nspawn-test-sc-');
});
afterEach(() => {
  spawnSync('umount', ['-R', join(dir, 'tree/m')], { stdio: 'ignore' });
  rmSync(dir, { recursive: true, force: true });
  setOpenat2(true);
});

/** a child process holding a lock on PATH until killed; resolves once it holds it */
function holder(path: string, opts: object): Promise<ReturnType<typeof spawn>> {
  const c = spawn(process.execPath, ['-e', `import(${JSON.stringify(DIST)}).then((m) => { const fd = require('node:fs').openSync(${JSON.stringify(path)}, 'r+'); if (!m.lockFd(fd, ${JSON.stringify(opts)})) process.exit(3); console.log('held'); setInterval(() => {}, 1000); })`], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((r, j) => {
    c.stdout!.once('data', () => r(c));
    c.once('exit', (code) => j(new Error(`holder exited ${code}`)));
  });
}

describe('locks', () => {
  for (const method of ['ofd', 'flock'] as const) {
    it(`${method}: another process's exclusive lock is seen, and gone when that process dies (kill -9)`, async () => {
      const p = join(dir, 'l');
      writeFileSync(p, '');
      const c = await holder(p, { method });
      try {
        const fd = openSync(p, 'r+');
        try {
          expect(lockFd(fd, { method })).toBe(false);
          expect(lockFd(fd, { method, shared: true })).toBe(false);
          expect(lockHeldElsewhere(fd, { method })).toBe(true);
          c.kill('SIGKILL');
          await new Promise((r) => c.once('exit', r));
          expect(lockHeldElsewhere(fd, { method })).toBe(false);
          expect(lockFd(fd, { method })).toBe(true);
        } finally {
          closeSync(fd);
        }
      } finally {
        c.kill('SIGKILL');
      }
    });
  }

  it('shared locks coexist; wait blocks until the holder goes', async () => {
    const p = join(dir, 'l');
    writeFileSync(p, '');
    const c = await holder(p, { shared: true });
    const fd = openSync(p, 'r+');
    try {
      expect(lockFd(fd, { shared: true })).toBe(true);
      const fd2 = openSync(p, 'r+');
      expect(lockFd(fd2)).toBe(false);
      closeSync(fd2);
      closeSync(fd);
      // an exclusive wait in a child returns only after the shared holder dies
      const w = spawn(process.execPath, ['-e', `import(${JSON.stringify(DIST)}).then((m) => { const fd = require('node:fs').openSync(${JSON.stringify(p)}, 'r+'); m.lockFd(fd, { wait: true }); console.log('got'); })`], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      w.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      const done = new Promise<number | null>((r) => w.once('exit', r));
      await new Promise((r) => setTimeout(r, 400));
      expect(out).toBe(''); // still waiting
      c.kill('SIGKILL');
      expect(await done).toBe(0);
      expect(out).toBe('got\n');
    } finally {
      c.kill('SIGKILL');
    }
  });

  it('makeLockFile: busy is undefined, release unlinks (exclusive), a shared holder leaves it to the last', async () => {
    const p = join(dir, 'img.lck');
    const a = makeLockFile(p)!;
    expect(a.exclusive).toBe(true);
    expect(makeLockFile(p)).toBeUndefined();
    expect(isCloseOnExec(a.fd)).toBe(true);
    a.release();
    expect(existsSync(p)).toBe(false);
    const s1 = makeLockFile(p, { shared: true })!;
    const s2 = makeLockFile(p, { shared: true })!;
    expect(makeLockFile(p)).toBeUndefined();
    s1.release();
    expect(existsSync(p)).toBe(true); // s2 still holds it
    s2.release();
    expect(existsSync(p)).toBe(false);
    const k = makeLockFile(p, { unlinkOnRelease: false })!;
    k.release();
    expect(existsSync(p)).toBe(true);
  });

  it('keepAcrossExec: the lock goes to the program exec\'d and ends with it', async () => {
    const p = join(dir, 'x.lck');
    const c = spawn(process.execPath, ['-e', `import(${JSON.stringify(DIST)}).then((m) => { const l = m.makeLockFile(${JSON.stringify(p)}); l.keepAcrossExec(); process.execve('/bin/sleep', ['sleep', '1']); })`]);
    const exited = new Promise((r) => c.once('exit', r));
    // held by the child, then by sleep(1) after the exec
    for (let i = 0; i < 100 && !existsSync(p); i++) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 300));
    expect(readlinkSync(`/proc/${c.pid}/exe`)).toBe('/usr/bin/sleep');
    expect(makeLockFile(p)).toBeUndefined();
    await exited;
    const l = makeLockFile(p)!;
    expect(l).toBeDefined();
    keepOnExec(l.fd);
    expect(isCloseOnExec(l.fd)).toBe(false);
    l.release();
  });
});

describe('openBeneath', () => {
  for (const openat2 of [true, false]) {
    it(`${openat2 ? 'openat2' : 'the O_NOFOLLOW walk'}: symlinks, .., absolute links and mounts are refused; real paths open`, () => {
      setOpenat2(openat2);
      const t = join(dir, 'tree');
      mkdirSync(join(t, 'a/b'), { recursive: true });
      mkdirSync(join(dir, 'outside'));
      writeFileSync(join(dir, 'outside/secret'), 'host');
      writeFileSync(join(t, 'a/b/f'), 'in');
      symlinkSync('../../outside', join(t, 'up'));
      symlinkSync(join(dir, 'outside'), join(t, 'abs'));
      symlinkSync('b', join(t, 'a/rel')); // even a link that stays inside is refused
      mkdirSync(join(t, 'm'));
      spawnSync('mount', ['-t', 'tmpfs', 'sc-test', join(t, 'm')]);
      writeFileSync(join(t, 'm/x'), 'other mount');
      const root = openSync(t, O_RDONLY | O_DIRECTORY);
      try {
        const fd = openBeneath(root, 'a/b/f', O_RDONLY);
        expect(readFileSync(fd, 'utf8')).toBe('in');
        closeSync(fd);
        for (const p of ['up/secret', 'abs/secret', 'a/rel/f'])
          expect(() => openBeneath(root, p, O_RDONLY), p).toThrow(/ELOOP|ENOTDIR/);
        expect(() => openBeneath(root, '../outside/secret', O_RDONLY)).toThrow(/leaves its root/);
        expect(() => openBeneath(root, '/etc/passwd', O_RDONLY)).toThrow(/leaves its root/);
        expect(() => openBeneath(root, 'm/x', O_RDONLY)).toThrow(/EXDEV/);
        expect(() => openBeneath(root, 'up', O_WRONLY | O_CREAT)).toThrow(/ELOOP|EEXIST/);
        // the symlink itself with O_PATH | O_NOFOLLOW
        const l = openBeneath(root, 'up', O_PATH | O_NOFOLLOW);
        expect(statFd(l).isSymbolicLink()).toBe(true);
        closeSync(l);
        // creation beneath
        const n = openBeneath(root, 'a/new', O_WRONLY | O_CREAT | O_EXCL, { mode: 0o640 });
        closeSync(n);
        expect(statSync(join(t, 'a/new')).mode & 0o777).toBe(0o640);
        expect(readFileSync(join(dir, 'outside/secret'), 'utf8')).toBe('host');
      } finally {
        closeSync(root);
      }
    });
  }
});

describe('metadata through descriptors', () => {
  it('owners, modes, times and xattrs of files, symlinks, nodes; renameat2 and linkat', () => {
    const root = openSync(dir, O_RDONLY | O_DIRECTORY);
    try {
      writeFileSync(join(dir, 'target'), 'host file');
      symlinkAt(join(dir, 'target'), root, 'link');
      fchownAt(root, 'link', 123, 456, AT_SYMLINK_NOFOLLOW);
      utimensAt(root, 'link', 1_000_000_000_500n, 2_000_000_000_700n);
      lsetxattrAt(root, 'link', 'trusted.sc', Buffer.from([0, 0xff, 1]));
      expect(lgetxattrAt(root, 'link', 'trusted.sc')).toEqual(Buffer.from([0, 0xff, 1]));
      const ls = lstatAt(root, 'link')!;
      expect([ls.uid, ls.gid, ls.mtimeNs]).toEqual([123, 456, 2_000_000_000_700n]);
      const ts = statSync(join(dir, 'target'));
      expect([ts.uid, ts.gid]).toEqual([0, 0]); // the target is untouched

      mknodAt(root, 'null', S_IFCHR | 0o600, makedev(1, 3));
      mknodAt(root, 'fifo', S_IFIFO | 0o600);
      for (const n of ['null', 'fifo']) {
        const fd = openBeneath(root, n, O_PATH | O_NOFOLLOW);
        fchownAt(fd, '', 7, 8, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
        fchmodPath(fd, 0o4640);
        closeSync(fd);
        const st = lstatSync(join(dir, n));
        expect([st.uid, st.gid, st.mode & 0o7777], n).toEqual([7, 8, 0o4640]);
      }
      expect(lstatSync(join(dir, 'null')).rdev).toBe(0x103);
      const lfd = openBeneath(root, 'link', O_PATH | O_NOFOLLOW);
      expect(() => fchmodPath(lfd, 0o777)).toThrow(/symlink/);
      closeSync(lfd);

      const f = openBeneath(root, 'file', O_WRONLY | O_CREAT | O_EXCL);
      fsetxattr(f, 'user.a', Buffer.from('1'));
      fsetxattr(f, 'trusted.b', Buffer.from([0x80, 0]));
      expect(flistxattr(f).sort()).toEqual(['trusted.b', 'user.a']);
      expect(fgetxattr(f, 'trusted.b')).toEqual(Buffer.from([0x80, 0]));
      expect(fgetxattr(f, 'user.none')).toBeUndefined();
      futimens(f, 5n, 1_700_000_000_123_456_789n);
      closeSync(f);
      expect(statSync(join(dir, 'file'), { bigint: true }).mtimeNs).toBe(1_700_000_000_123_456_789n);

      mkdirAt(root, 'd', 0o700);
      expect(() => renameAt2(root, 'file', root, 'd', RENAME_NOREPLACE)).toThrow(/EEXIST/);
      renameAt2(root, 'file', root, 'd', RENAME_EXCHANGE);
      expect(lstatSync(join(dir, 'd')).isFile()).toBe(true);
      linkAt(root, 'link', root, 'hl');
      expect(readlinkSync(join(dir, 'hl'))).toBe(join(dir, 'target')); // a link to the symlink itself
    } finally {
      closeSync(root);
    }
  });
});

describe('removeTreeAt', () => {
  it('removes a deep tree, never follows a symlink, never enters another mount', () => {
    mkdirSync(join(dir, 'outside'));
    writeFileSync(join(dir, 'outside/keep'), 'host');
    const t = join(dir, 'tree');
    mkdirSync(t);
    // deeper than PATH_MAX: made through descriptors
    const root = openSync(dir, O_RDONLY | O_DIRECTORY);
    let d = openSync(t, O_RDONLY | O_DIRECTORY);
    for (let i = 0; i < 40; i++) {
      mkdirAt(d, 'x'.repeat(200), 0o755);
      const n = openBeneath(d, 'x'.repeat(200), O_RDONLY | O_DIRECTORY);
      closeSync(d);
      d = n;
    }
    symlinkAt(join(dir, 'outside'), d, 'esc');
    closeSync(d);
    symlinkSync(join(dir, 'outside'), join(t, 'esc'));
    mkdirSync(join(t, 'm'));
    spawnSync('mount', ['-t', 'tmpfs', 'sc-test', join(t, 'm')]);
    writeFileSync(join(t, 'm/other'), 'x');
    try {
      let first: unknown;
      try {
        removeTreeAt(root, 'tree');
      } catch (e) {
        first = e;
      }
      expect(String(first)).toMatch(/m is a mount point/);
      expect((first as { result: { removed: number } }).result.removed).toBeGreaterThan(40);
      expect(existsSync(join(t, 'm/other'))).toBe(true);
      expect(existsSync(join(t, 'x'.repeat(200)))).toBe(false);
      spawnSync('umount', [join(t, 'm')]);
      expect(removeTreeAt(root, 'tree').removed).toBe(2);
      expect(existsSync(t)).toBe(false);
      expect(readFileSync(join(dir, 'outside/keep'), 'utf8')).toBe('host');
      expect(removeTreeAt(root, 'tree').removed).toBe(0);
    } finally {
      closeSync(root);
    }
  });
});

describe('pidfdGetfd', () => {
  it("duplicates another process's descriptor: its stdin, from which we then read what we sent it", async () => {
    const { pidfdGetfd } = await import('../src/index.js');
    const { readSync } = await import('node:fs');
    const child = spawn('sleep', ['30'], { stdio: ['pipe', 'ignore', 'ignore'] });
    try {
      await new Promise<void>((r) => child.stdin!.write('sent to the child', () => r()));
      const fd = pidfdGetfd(child.pid!, 0);
      try {
        const buf = Buffer.alloc(64);
        const n = readSync(fd, buf, 0, buf.length, null);
        expect(buf.subarray(0, n).toString()).toBe('sent to the child');
      } finally {
        closeSync(fd);
      }
      expect(() => pidfdGetfd(child.pid!, 999)).toThrow(/pidfd_getfd\(\d+, 999\): EBADF/);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
