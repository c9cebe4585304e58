import { spawn } from 'node:child_process';
import { execaSync } from 'execa';
import { chmodSync, chownSync, lstatSync, mkdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { idmappedMount, idmapSupported, shiftTree, UID_BUSY_BASE } from '../src/index.js';
import { useXattrAt } from '../src/shift.js';
import { acls, common, makeTree, mountsUnder, ownership, removeTemp, requireRoot, systemdNspawn, tempDir } from './helpers.js';

requireRoot();
const BASE = 0x7a0000;

/** a tree with what chown must get right: set-id bits, symlinks, ACLs (access and default), odd owners */
function decorate(root: string): void {
  mkdirSync(join(root, 'srv/acl'), { recursive: true });
  writeFileSync(join(root, 'srv/acl/f'), 'x');
  execaSync('setfacl', ['-m', 'u:1000:rx,g:1001:r', join(root, 'srv/acl/f')]);
  execaSync('setfacl', ['-d', '-m', 'u:1002:rwx,g:1003:rx', join(root, 'srv/acl')]);
  writeFileSync(join(root, 'srv/suid'), '#!/bin/sh\n');
  chownSync(join(root, 'srv/suid'), 1000, 1000);
  chmodSync(join(root, 'srv/suid'), 0o6755);
  symlinkSync('/nonexistent', join(root, 'srv/dangling'));
  execaSync('chown', ['-h', '1005:1006', join(root, 'srv/dangling')]);
  writeFileSync(join(root, 'srv/high'), '');
  chownSync(join(root, 'srv/high'), 65534, 65534);
}

/** roots on the file systems at hand: ext4 (/var/tmp), and btrfs on a loop device when mkfs.btrfs is there */
const fsRoots: Array<{ fs: string; dir: string; cleanup: () => void }> = [];
beforeAll(() => {
  const d = tempDir('ut-shift-');
  fsRoots.push({ fs: 'ext4', dir: d, cleanup: () => removeTemp(d) });
  try {
    execaSync('which', ['mkfs.btrfs'], { stdio: 'ignore' });
  } catch {
    return;
  }
  const b = tempDir('ut-btrfs-');
  const img = join(b, 'img');
  const mnt = join(b, 'mnt');
  mkdirSync(mnt);
  execaSync('truncate', ['-s', '300M', img]);
  execaSync('mkfs.btrfs', ['-q', img]);
  const loop = execaSync('losetup', ['--find', '--show', img]).stdout.trim();
  execaSync('mount', [loop, mnt]);
  fsRoots.push({
    fs: 'btrfs',
    dir: mnt,
    cleanup: () => {
      execaSync('umount', [mnt]);
      execaSync('losetup', ['-d', loop]);
      removeTemp(b);
    },
  });
});
afterAll(() => {
  for (const r of fsRoots.splice(0).reverse()) r.cleanup();
});

describe.each(['ext4', 'btrfs'])('on %s', (fs) => {
  const where = () => fsRoots.find((r) => r.fs === fs)?.dir;

  it('shiftTree gives the ownership and ACLs systemd-nspawn --private-users-ownership=chown gives', (ctx) => {
    const d = where();
    if (!d) return ctx.skip();
    const ours = makeTree(d, 'ours');
    const theirs = makeTree(d, 'theirs');
    decorate(ours);
    decorate(theirs);
    expect(shiftTree(ours, BASE)).toBe('changed');
    const r = systemdNspawn([`--private-users=${BASE}`, '--private-users-ownership=chown', '-D', theirs, '/bin/true']);
    expect(r.status, r.err).toBe(0);
    const [a, b] = common(ownership(ours), ownership(theirs));
    expect(a.split('\n').length).toBeGreaterThan(250);
    expect(a).toBe(b);
    expect(acls(join(ours, 'srv'))).toBe(acls(join(theirs, 'srv')));
    expect(acls(ours)).toContain(`user:${BASE + 1000}:r-x`);
    expect(acls(ours)).toContain(`default:group:${BASE + 1003}:r-x`);
    expect(statSync(join(ours, 'srv/suid')).mode & 0o7777).toBe(0o6755);
    expect(lstatSync(join(ours, 'srv/dangling')).uid).toBe(BASE + 1005);
    // shifted once: the top directory says so, nothing is done again
    expect(shiftTree(ours, BASE)).toBe('unchanged');
    // and back to 0 (a shift to another range rewrites the upper 16 bits)
    expect(shiftTree(ours, 0x10000 * 0x90)).toBe('changed');
    const [c, e] = common(ownership(ours, 0x900000), ownership(theirs, BASE));
    expect(c).toBe(e);
  });

  it('without getxattrat() (kernels before 6.13) the ACLs are shifted alike, through /proc/self/fd/DIR/NAME', (ctx) => {
    const d = where();
    if (!d) return ctx.skip();
    const a = makeTree(d, 'acl-at');
    const b = makeTree(d, 'acl-proc');
    decorate(a);
    decorate(b);
    expect(shiftTree(a, BASE)).toBe('changed');
    useXattrAt(false);
    try {
      expect(shiftTree(b, BASE)).toBe('changed');
    } finally {
      useXattrAt(true);
    }
    expect(acls(join(b, 'srv'))).toContain(`user:${BASE + 1000}:r-x`);
    expect(acls(b)).toBe(acls(a).replaceAll('acl-at', 'acl-proc'));
    expect(ownership(b)).toBe(ownership(a));
  });

  it('never crosses a mount point', (ctx) => {
    const d = where();
    if (!d) return ctx.skip();
    const t = makeTree(d, 'mnt');
    mkdirSync(join(t, 'srv/m'), { recursive: true });
    const outside = join(d, 'outside');
    mkdirSync(outside);
    writeFileSync(join(outside, 'f'), '');
    execaSync('mount', ['--bind', outside, join(t, 'srv/m')]);
    try {
      shiftTree(t, BASE);
      expect(statSync(join(outside, 'f')).uid).toBe(0);
      expect(statSync(outside).uid).toBe(0);
    } finally {
      execaSync('umount', [join(t, 'srv/m')]);
    }
    expect(statSync(join(t, 'srv/m')).uid).toBe(0); // the mount point itself (under the mount) is not ours either
    expect(statSync(join(t, 'srv')).uid).toBe(BASE);
  });

  it('an interrupted chown is finished on the next run (busy marker)', async (ctx) => {
    const d = where();
    if (!d) return ctx.skip();
    const t = makeTree(d, 'intr');
    const ref = makeTree(d, 'intr-ref');
    // interrupted right after marking the top directory: the top carries the busy range, nothing else changed
    chownSync(t, UID_BUSY_BASE, UID_BUSY_BASE);
    expect(statSync(t).uid >>> 0).toBe(UID_BUSY_BASE);
    expect(shiftTree(t, BASE)).toBe('changed');
    shiftTree(ref, BASE);
    expect(ownership(t)).toBe(ownership(ref));
    // and one interrupted half-way (some inodes shifted already, the top still busy)
    const t2 = makeTree(d, 'intr2');
    chownSync(t2, UID_BUSY_BASE, UID_BUSY_BASE);
    chownSync(join(t2, 'bin'), BASE, BASE);
    expect(shiftTree(t2, BASE)).toBe('changed');
    expect(ownership(t2)).toBe(ownership(ref));
    // killed in the middle of a big walk: some inodes shifted, the top still busy
    const big = join(d, 'big');
    mkdirSync(big);
    for (let i = 0; i < 40; i++) {
      mkdirSync(join(big, `d${i}`));
      for (let j = 0; j < 250; j++) writeFileSync(join(big, `d${i}`, `f${j}`), '');
    }
    const dist = join(import.meta.dirname, '../dist/index.js');
    const child = spawn(process.execPath, ['-e', `import(${JSON.stringify(dist)}).then((m) => { process.stdout.write('go\\n'); m.shiftTree(${JSON.stringify(big)}, ${BASE}); })`], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    await new Promise((r) => child.stdout!.once('data', r));
    await new Promise((r) => setTimeout(r, 5));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const top = statSync(big).uid >>> 0;
    expect(top === UID_BUSY_BASE || top === BASE).toBe(true);
    if (top === UID_BUSY_BASE) expect(shiftTree(big, BASE)).toBe('changed');
    const owners = new Set(ownership(big).split('\n').map((l) => l.split(' ')[1]));
    expect([...owners]).toEqual([String(BASE)]);
  });

  it('idmappedMount shows on-disk 0.. as BASE.. without changing the disk', (ctx) => {
    const d = where();
    if (!d) return ctx.skip();
    const t = makeTree(d, 'idm');
    const view = join(d, 'view');
    mkdirSync(view);
    expect(idmapSupported(t)).toBe(true);
    idmappedMount(t, BASE, 65536, view);
    try {
      expect(mountsUnder(view)).toEqual([view]);
      expect(statSync(join(view, 'bin/busybox')).uid).toBe(BASE);
      expect(statSync(join(t, 'bin/busybox')).uid).toBe(0);
    } finally {
      execaSync('umount', [view]);
    }
  });
});

describe('refusals', () => {
  it("misaligned bases and other counts, with systemd's words", () => {
    expect(() => shiftTree('/nonexistent', BASE + 5)).toThrow(/only supported for UID\/GID ranges starting at multiples of 2\^16 with a range of 2\^16/);
    expect(() => shiftTree('/nonexistent', BASE, 1000)).toThrow(/with a range of 2\^16 \(got base \d+, count 1000\)/);
  });
});
