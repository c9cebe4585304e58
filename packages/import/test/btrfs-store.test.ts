// import-tar into a btrfs store: the image is a subvolume made under its hidden name and renamed into place; a
// refused archive leaves no subvolume (the partial one is removed through descriptors, then by ioctl).
import { execaSync } from 'execa';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isSubvolume, isSubvolumeReadOnly, listSubvolumes } from '@nspawn/btrfs';
import { importFs, importRaw, importTar } from '../src/index.js';
import { buildTar } from '../src/test-build-tar.js';

const sh = (cmd: string, args: string[]) => execaSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }).stdout.trim();
let base: string;
let loop: string;
let store: string;
beforeAll(() => {
  base = mkdtempSync('/var/tmp/nspawn-im-btrfs-');
  sh('truncate', ['-s', '300M', join(base, 'fs.img')]);
  sh('mkfs.btrfs', ['-q', '-f', join(base, 'fs.img')]);
  loop = sh('losetup', ['--find', '--show', join(base, 'fs.img')]);
  sh('mkdir', ['-p', join(base, 'mnt')]);
  sh('mount', [loop, join(base, 'mnt')]);
  store = join(base, 'mnt/machines');
  sh('mkdir', [store]);
});
afterAll(() => {
  try {
    sh('umount', [join(base, 'mnt')]);
  } finally {
    sh('losetup', ['-d', loop]);
    rmSync(base, { recursive: true, force: true });
  }
});

describe('a btrfs store', () => {
  it('an image is a subvolume; a hostile archive leaves no subvolume, no hidden entry', async () => {
    writeFileSync(join(base, 'ok.tar'), buildTar([{ name: 'etc/', type: '5' }, { name: 'etc/os-release', data: 'ID=x\n' }]));
    const r = await importTar(join(base, 'ok.tar'), { name: 'img', root: store });
    expect(isSubvolume(r.path)).toBe(true);
    writeFileSync(join(base, 'evil.tar'), buildTar([{ name: 'd/', type: '5' }, { name: 'd/f', data: 'x' }, { name: 'l', type: '2', linkname: '/etc' }, { name: 'l/pwned', data: 'x' }]));
    await expect(importTar(join(base, 'evil.tar'), { name: 'evil', root: store })).rejects.toThrow(/would be written through the symlink 'l'/);
    expect(readdirSync(store)).toEqual(['img']);
    expect(listSubvolumes(join(base, 'mnt')).map((s) => s.path)).toEqual(['machines/img']);
  });

  it('import-fs makes a subvolume (read-only with readOnly); cancelled once its subvolume exists, it leaves none', async () => {
    const src = join(base, 'tree');
    mkdirSync(join(src, 'etc'), { recursive: true });
    writeFileSync(join(src, 'etc/os-release'), 'ID=tree\n');
    symlinkSync('/etc/shadow', join(src, 'shadow'));
    const r = await importFs(src, { root: store, name: 'fs' });
    expect(r.subvolume).toBe(true);
    expect(isSubvolume(r.path)).toBe(true);
    const ro = await importFs(src, { root: store, name: 'fs-ro', readOnly: true });
    expect(isSubvolumeReadOnly(ro.path)).toBe(true);
    const ac = new AbortController();
    let seen: string[] = [];
    await expect(
      importFs(src, {
        root: store,
        name: 'fs-cancel',
        signal: ac.signal,
        // called once the hidden subvolume is made, before the copy
        log: () => {
          seen = readdirSync(store).filter((n) => n.startsWith('.#import-fs-cancel-'));
          ac.abort();
        },
      }),
    ).rejects.toThrow(`Transfer of ${src} was cancelled.`);
    expect(seen).toHaveLength(1);
    expect(readdirSync(store).sort()).toEqual(['fs', 'fs-ro', 'img']);
    expect(listSubvolumes(join(base, 'mnt')).map((s) => s.path).sort()).toEqual(['machines/fs', 'machines/fs-ro', 'machines/img']);
  });

  it('import-raw into a btrfs store: a file, written sparsely', async () => {
    const raw = Buffer.alloc(8 * 1024 * 1024);
    raw.write('x', 4 * 1024 * 1024);
    writeFileSync(join(base, 'disk.raw'), raw);
    const r = await importRaw(join(base, 'disk.raw'), { root: store });
    expect(statSync(r.path).size).toBe(raw.length);
    expect(statSync(r.path).blocks * 512).toBeLessThan(1024 * 1024);
    expect(readdirSync(store).sort()).toEqual(['disk.raw', 'fs', 'fs-ro', 'img']);
  });
});
