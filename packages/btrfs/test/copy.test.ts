/**
 * copyTree() and populateFromTemplate() on real ext4 and btrfs: hard links, xattrs and ACLs, holes, owners,
 * modes, nanosecond times, device nodes, fifos, symlinks; reflinks on btrfs; a subvolume template snapshotted,
 * anything else copied; an existing directory left alone. Root only.
 */
import { spawn } from 'node:child_process';
import { execaSync } from 'execa';
import { chownSync, closeSync, existsSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, symlinkSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { copyTree, createSubvolume, isSubvolume, isImmutable, isSubvolumeReadOnly, listSubvolumes, populateFromTemplate, removeTree, setImmutable } from '../src/index.js';
import { fileSystemsForTests } from './fixture.js';
import { listImages, lockImage } from '../src/index.js';
import { cleanTemplateLeftovers } from '../src/template.js';

const DIST = join(import.meta.dirname, '../dist/index.js');

const fss = fileSystemsForTests(128);

const sh = (cmd: string, args: string[]) => execaSync(cmd, args, { stripFinalNewline: false }).stdout;

function makeSource(dir: string, sub: boolean): void {
  if (sub) createSubvolume(dir);
  else mkdirSync(dir);
  mkdirSync(join(dir, 'etc/deep'), { recursive: true, mode: 0o750 });
  writeFileSync(join(dir, 'etc/a'), 'alpha');
  execaSync('ln', [join(dir, 'etc/a'), join(dir, 'etc/deep/a-hard')]);
  writeFileSync(join(dir, 'suid'), '#!/bin/sh\n', { mode: 0o4755 });
  chownSync(join(dir, 'etc/a'), 1234, 5678);
  sh('setfattr', ['-n', 'user.bt', '-v', 'xattr-value', join(dir, 'etc/a')]);
  sh('setfacl', ['-m', 'u:1234:rwx', join(dir, 'etc/deep')]);
  sh('setfacl', ['-d', '-m', 'g:99:rx', join(dir, 'etc/deep')]);
  // 8 MiB sparse file with 4 KiB of data in the middle
  const fd = openSync(join(dir, 'sparse'), 'w');
  writeSync(fd, Buffer.alloc(4096, 7), 0, 4096, 4 << 20);
  closeSync(fd);
  execaSync('truncate', ['-s', '8M', join(dir, 'sparse')]);
  writeFileSync(join(dir, 'big'), Buffer.alloc(1 << 20, 3));
  symlinkSync('../etc/a', join(dir, 'rel-link'));
  symlinkSync('/nonexistent/target', join(dir, 'dangling'));
  sh('mknod', [join(dir, 'null'), 'c', '1', '3']);
  sh('mkfifo', [join(dir, 'fifo')]);
  utimesSync(join(dir, 'etc/a'), new Date('2001-02-03T04:05:06.789Z'), new Date('2002-03-04T05:06:07.891Z'));
}

function checkCopy(src: string, dst: string): void {
  const s = (p: string) => lstatSync(join(dst, p), { bigint: true });
  const o = (p: string) => lstatSync(join(src, p), { bigint: true });
  expect(readFileSync(join(dst, 'etc/a'), 'utf8')).toBe('alpha');
  expect(s('etc/a').ino).toBe(s('etc/deep/a-hard').ino);
  expect(s('etc/a').nlink).toBe(2n);
  expect([s('etc/a').uid, s('etc/a').gid]).toEqual([1234n, 5678n]);
  expect(s('etc/a').mtimeNs).toBe(o('etc/a').mtimeNs);
  expect(s('suid').mode & 0o7777n).toBe(0o4755n);
  expect(s('etc/deep').mode & 0o7777n).toBe(o('etc/deep').mode & 0o7777n);
  expect(sh('getfattr', ['--only-values', '-n', 'user.bt', join(dst, 'etc/a')])).toBe('xattr-value');
  const acl = (p: string) => sh('getfacl', ['-cp', p]);
  expect(acl(join(dst, 'etc/deep'))).toBe(acl(join(src, 'etc/deep')));
  expect(acl(join(dst, 'etc/deep'))).toContain('default:group:99:r-x');
  expect(s('sparse').size).toBe(8n << 20n);
  expect(s('sparse').blocks * 512n).toBeLessThan(1n << 20n);
  expect(readFileSync(join(dst, 'sparse')).subarray(4 << 20, (4 << 20) + 4096).every((b) => b === 7)).toBe(true);
  expect(readlinkSync(join(dst, 'rel-link'))).toBe('../etc/a');
  expect(readlinkSync(join(dst, 'dangling'))).toBe('/nonexistent/target');
  expect(s('null').isCharacterDevice() && s('null').rdev === o('null').rdev).toBe(true);
  expect(s('fifo').isFIFO()).toBe(true);
}

describe.each(['ext4', 'btrfs'] as const)('copy on %s', (kind) => {
  it('copyTree keeps hard links, xattrs, ACLs, holes, owners, modes, times and special files', () => {
    const fs = fss[kind]!;
    const src = join(fs.dir, 'src');
    makeSource(src, false);
    const dst = join(fs.dir, 'dst');
    const st = copyTree(src, dst);
    checkCopy(src, dst);
    expect(st.subvolume).toBe(kind === 'btrfs');
    expect(isSubvolume(dst)).toBe(kind === 'btrfs');
    if (kind === 'btrfs') expect(st.reflinked).toBeGreaterThan(0);
    expect(() => copyTree(src, dst)).toThrow(/destination exists/);
    removeTree(dst, { within: fs.dir });
  });

  it('--template: snapshot of a subvolume, a copy of anything else, read-only on request, an existing directory untouched', () => {
    const fs = fss[kind]!;
    const src = join(fs.dir, 'src');
    const t1 = join(fs.dir, 'machines/t1');
    expect(populateFromTemplate(src, t1)).toBe('copy');
    checkCopy(src, t1);
    writeFileSync(join(t1, 'mine'), 'mine');
    expect(populateFromTemplate(src, t1)).toBe('exists');
    expect(readFileSync(join(t1, 'mine'), 'utf8')).toBe('mine');
    const t2 = join(fs.dir, 'machines/t2');
    expect(populateFromTemplate(src, t2, { readOnly: true })).toBe('copy');
    if (kind === 'btrfs') expect(isSubvolumeReadOnly(t2)).toBe(true);
    else {
      expect(isImmutable(t2)).toBe(true);
      setImmutable(t2, false);
    }
    if (kind === 'btrfs') {
      const sub = join(fs.dir, 'subsrc');
      makeSource(sub, true);
      createSubvolume(join(sub, 'etc/nested'));
      const t3 = join(fs.dir, 'machines/t3');
      expect(populateFromTemplate(sub, t3)).toBe('snapshot');
      expect(isSubvolume(t3)).toBe(true);
      expect(listSubvolumes(t3).map((x) => x.path)).toEqual(['etc/nested']);
      checkCopy(sub, t3);
    }
    removeTree(join(fs.dir, 'machines'), { within: fs.dir });
  });

  it('--template: a copy killed half way leaves only a hidden, unlisted leftover, removed by the next start', async () => {
    const fs = fss[kind]!;
    const big = join(fs.dir, 'bigsrc');
    mkdirSync(join(big, 'usr'), { recursive: true });
    for (let i = 0; i < 3000; i++) writeFileSync(join(big, 'usr', `f${i}`), `file ${i}\n`);
    const machines = join(fs.dir, 'machines');
    const target = join(machines, 'killed');
    mkdirSync(machines, { recursive: true });
    const child = spawn(process.execPath, ['-e', `import(${JSON.stringify(DIST)}).then((m) => m.populateFromTemplate(${JSON.stringify(big)}, ${JSON.stringify(target)}))`], { stdio: 'ignore' });
    const exited = new Promise((r) => child.once('exit', r));
    const temps = () => readdirSync(machines).filter((n) => n.startsWith('.#template-killed-') && !n.endsWith('.lck'));
    for (let i = 0; i < 400 && temps().length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    child.kill('SIGKILL');
    await exited;
    expect(temps()).toHaveLength(1);
    expect(existsSync(target), 'no half tree under the name').toBe(false);
    expect(listImages({ root: machines }).map((i) => i.name)).toEqual([]);
    // a copy in progress (its lock held) is left alone
    const busy = join(machines, '.#template-killed-0123456789abcdef');
    mkdirSync(busy);
    const held = lockImage(busy);
    try {
      expect(populateFromTemplate(big, target)).toBe('copy');
    } finally {
      held.release();
    }
    expect(readdirSync(join(target, 'usr'))).toHaveLength(3000);
    expect(temps()).toEqual(['.#template-killed-0123456789abcdef']);
    expect(cleanTemplateLeftovers(target)).toEqual([busy]);
    expect(readdirSync(machines).filter((n) => n.startsWith('.#'))).toEqual([]);
    removeTree(machines, { within: fs.dir });
    removeTree(big, { within: fs.dir });
  });
});
