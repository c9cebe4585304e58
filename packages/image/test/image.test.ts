// Root tests on the real kernel: images made with sfdisk and mkfs, opened, mounted (in a holder's namespace, in
// this one, or by another process from the plan), inspected and closed, with no loop device or mount left after
// close, after an error, and after kill -9 of their owner.
import { spawn } from 'node:child_process';
import { execa, execaSync } from 'execa';
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executePlan, ImageError, inspectImage, openImage, openImageView, type OpenedImage } from '../src/index.js';
import { globalLockPath } from '@nspawn/btrfs';
import { buildGpt } from '../src/test/build.js';
import { alive, Fixture, NATIVE, sha256, TYPES } from './fixture.js';

if (process.getuid?.() !== 0) throw new Error('these tests need root (loop devices, mounts)');

let fx: Fixture;
let full: string; // root + usr + home (btrfs) + srv + var + tmp
let simple: string; // one root partition with the whole busybox tree
beforeAll(() => {
  fx = new Fixture();
  const { root, usr } = fx.split();
  const homeTree = fx.path('home-tree');
  mkdirSync(join(homeTree, 'alice'), { recursive: true });
  writeFileSync(join(homeTree, 'alice/hello'), 'from /home\n');
  full = fx.image('im-full.raw', [
    { type: NATIVE.root, size: 16, fs: 'ext4', tree: root, name: 'root-1.0' },
    { type: NATIVE.usr, size: 16, fs: 'ext4', tree: usr, name: 'usr-1.0' },
    { type: TYPES.home, size: 120, fs: 'btrfs', tree: homeTree },
    { type: TYPES.srv, size: 8, fs: 'ext4', attrs: 'GUID:60' }, // read-only flag
    { type: TYPES.var, size: 8, fs: 'ext4' },
    { type: TYPES.tmp, size: 8, fs: 'ext4' },
  ]).path;
  simple = fx.image('im-simple.raw', [{ type: NATIVE.root, size: 24, fs: 'ext4', tree: fx.busybox() }]).path;
}, 300_000);
afterAll(() => fx?.cleanup());

/** the mounts of a process (by PID), below a mount point */
const mountsOf = (pid: number | 'self', below: string) =>
  readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
    .split('\n')
    .filter((l) => l.split(' ')[4]?.startsWith(below))
    .map((l) => {
      const f = l.split(' ');
      const dash = f.indexOf('-');
      return { target: f[4]!, options: f[5]!, fstype: f[dash + 1]!, source: f[dash + 2]!, superOptions: f[dash + 3]! };
    });

async function closed(img: OpenedImage) {
  await img.close();
  expect(await fx.noLoopsLeft()).toEqual([]);
  expect(fx.mounts()).toEqual([]);
}

describe('a GPT image with root, /usr, /home (btrfs), /srv (read-only flag), /var and /var/tmp', () => {
  it('opens: a loop device per partition, by offset, AUTOCLEAR, the read-only flag honoured', async () => {
    const img = await openImage(full);
    try {
      expect(Object.keys(img.devices)).toEqual(['root', 'usr', 'home', 'srv', 'var', 'tmp']);
      const loops = fx.loops();
      expect(loops).toHaveLength(6);
      for (const d of Object.values(img.devices)) {
        const sys = `/sys/block/${d.path.slice(5)}/loop`;
        expect(readFileSync(`${sys}/autoclear`, 'utf8').trim()).toBe('1');
        expect(Number(readFileSync(`${sys}/offset`, 'utf8'))).toBe(d.offset);
        expect(Number(readFileSync(`${sys}/sizelimit`, 'utf8'))).toBe(d.size);
        expect(readFileSync(`/sys/block/${d.path.slice(5)}/ro`, 'utf8').trim()).toBe(d === img.devices.srv ? '1' : '0');
      }
      expect(img.devices.root!.offset).toBe(1 << 20);
      expect(img.dissected.partitions.home!.fstype).toBe('btrfs');
    } finally {
      await closed(img);
    }
  });

  it('mounts in a private namespace: everything at its place, nothing in ours; close leaves nothing', async () => {
    const img = await openImage(full);
    try {
      const m = await img.mount();
      expect(m.pid).toBeGreaterThan(0);
      expect(m.root).toBe(`/proc/${m.pid}/root/tmp/root`);
      expect(readFileSync(join(m.root, 'usr/lib/os-release'), 'utf8')).toMatch(/ID=busybox/);
      expect(readFileSync(join(m.root, 'home/alice/hello'), 'utf8')).toBe('from /home\n');
      expect(existsSync(join(m.root, 'bin/busybox'))).toBe(true);
      const ms = mountsOf(m.pid!, '/tmp/root');
      expect(ms.map((x) => [x.target, x.fstype, x.source])).toEqual([
        ['/tmp/root', 'ext4', img.devices.root!.path],
        ['/tmp/root/usr', 'ext4', img.devices.usr!.path],
        ['/tmp/root/home', 'btrfs', img.devices.home!.path],
        ['/tmp/root/srv', 'ext4', img.devices.srv!.path],
        ['/tmp/root/var', 'ext4', img.devices.var!.path],
        ['/tmp/root/var/tmp', 'ext4', img.devices.tmp!.path],
      ]);
      for (const x of ms) expect(x.options.split(',')).toContain('nodev');
      expect(ms.find((x) => x.target === '/tmp/root/srv')!.options.split(',')).toContain('ro');
      expect(ms.find((x) => x.target === '/tmp/root/var')!.options.split(',')).toContain('rw');
      expect(fx.mounts()).toEqual([]); // the host sees none of it
      writeFileSync(join(m.root, 'var/im-written'), 'kept\n');
      await m.unmount();
      expect(alive(m.pid!)).toBe(false);
    } finally {
      await closed(img);
    }
    // written to the image: a second open sees it
    const again = await openImage(full, { readOnly: true });
    try {
      const m = await again.mount();
      expect(readFileSync(join(m.root, 'var/im-written'), 'utf8')).toBe('kept\n');
    } finally {
      await closed(again);
    }
  });

  it('--read-only: every mount read-only, with norecovery, the image file unchanged', async () => {
    const before = sha256(full);
    const img = await openImage(full, { readOnly: true });
    try {
      expect(Object.values(img.devices).every((d) => d.readOnly)).toBe(true);
      const m = await img.mount();
      for (const x of mountsOf(m.pid!, '/tmp/root')) {
        expect(x.options.split(',')).toContain('ro');
        if (x.fstype === 'ext4') expect(x.superOptions.split(',')).toContain('norecovery'); // no journal replay into the image
      }
      expect(() => writeFileSync(join(m.root, 'etc/im-nope'), 'x')).toThrow(/EROFS/);
    } finally {
      await closed(img);
    }
    expect(sha256(full)).toBe(before);
  });

  it('-x (overlay): writable, the writes gone afterwards, the image file untouched', async () => {
    const before = sha256(full);
    const img = await openImage(full, { ephemeral: true });
    try {
      expect(img.ephemeral).toBe('overlay');
      expect(Object.values(img.devices).every((d) => d.readOnly)).toBe(true);
      const m = await img.mount();
      writeFileSync(join(m.root, 'etc/im-ephemeral'), 'gone soon\n');
      writeFileSync(join(m.root, 'usr/im-ephemeral'), 'gone soon\n');
      appendFileSync(join(m.root, 'var/tmp/im-x'), 'x');
      expect(readFileSync(join(m.root, 'home/alice/hello'), 'utf8')).toBe('from /home\n');
      const top = mountsOf(m.pid!, '/tmp/root');
      expect(top.filter((x) => x.fstype === 'overlay').map((x) => x.target)).toEqual([
        '/tmp/root',
        '/tmp/root/usr',
        '/tmp/root/home',
        '/tmp/root/srv',
        '/tmp/root/var',
        '/tmp/root/var/tmp',
      ]);
    } finally {
      await closed(img);
    }
    expect(sha256(full)).toBe(before);
    const again = await openImage(full, { readOnly: true });
    try {
      const m = await again.mount();
      expect(existsSync(join(m.root, 'etc/im-ephemeral'))).toBe(false);
    } finally {
      await closed(again);
    }
  });

  it("-x (copy, systemd's way): the copy is gone from the directory once the loop devices hold it", async () => {
    const before = sha256(full);
    const img = await openImage(full, { ephemeral: 'copy' });
    try {
      expect(readdirSync(fx.dir).filter((f) => f.startsWith('.#machine.'))).toEqual([]);
      expect(fx.loops().every((l) => /\/\.#machine\.im-full\.raw[0-9a-f]{16} \(deleted\)$/.test(l))).toBe(true);
      const m = await img.mount();
      writeFileSync(join(m.root, 'etc/im-copy'), 'x');
    } finally {
      await closed(img);
    }
    expect(sha256(full)).toBe(before);
    expect(readdirSync(fx.dir).filter((f) => f.startsWith('.#machine.'))).toEqual([]);
  });

  it('the image lock: a second writer is refused as by systemd-nspawn, readers share', async () => {
    const a = await openImage(full);
    try {
      await expect(openImage(full)).rejects.toThrow(`Disk image ${full} is currently busy.`);
      await expect(openImage(full, { readOnly: true })).rejects.toMatchObject({ code: 'EBUSY' });
      expect(existsSync(join(fx.dir, '.#im-full.raw.lck'))).toBe(true);
      expect((await inspectImage(full)).locked).toBe(true);
    } finally {
      await closed(a);
    }
    expect(existsSync(join(fx.dir, '.#im-full.raw.lck'))).toBe(false);
    const r1 = await openImage(full, { readOnly: true });
    const r2 = await openImage(full, { readOnly: true });
    try {
      await expect(openImage(full)).rejects.toThrow(/currently busy/);
    } finally {
      await r1.close();
      await closed(r2);
    }
  });

  it('--image-policy: refusals before any loop device; unused partitions left out', async () => {
    await expect(openImage(full, { imagePolicy: 'root=unprotected:usr=unprotected:=absent' })).rejects.toMatchObject({
      code: 'ERFKILL',
      message: `${full}: image does not match image policy: Partition of designator 'home' exists, but not allowed by policy, refusing.`,
    });
    expect(fx.loops()).toEqual([]);
    const img = await openImage(full, { readOnly: true, imagePolicy: 'root=unprotected:usr=unprotected:=ignore' });
    try {
      expect(Object.keys(img.devices)).toEqual(['root', 'usr']);
    } finally {
      await closed(img);
    }
  });

  it('-x with --read-only: no overlay needed, every mount read-only', async () => {
    const img = await openImage(full, { ephemeral: true, readOnly: true });
    try {
      const m = await img.mount();
      const ms = mountsOf(m.pid!, '/tmp/root');
      expect(ms.map((x) => x.fstype)).not.toContain('overlay');
      for (const x of ms) expect(x.options.split(',')).toContain('ro');
    } finally {
      await closed(img);
    }
  });

  it('inspectImage: the partitions and, mounted read-only in private, the os-release', async () => {
    const i = await inspectImage(full, { metadata: true });
    expect(i.kind).toBe('file');
    expect(i.locked).toBe(false);
    expect(i.dissected.entries.map((e) => e.designator)).toEqual(['root', 'usr', 'home', 'srv', 'var', 'tmp']);
    expect(i.metadata?.osRelease?.ID).toBe('busybox');
    expect(await fx.noLoopsLeft()).toEqual([]);
  });
});

describe('mounting from the plan, elsewhere', () => {
  it('another process carries out plan() in its own namespace while we hold the loop devices', async () => {
    const img = await openImage(simple);
    try {
      const steps = img.plan();
      expect(steps).toMatchObject([{ op: 'mount', partition: 'root', device: { path: img.devices.root!.path }, fstype: 'ext4', target: '' }]);
      // a stand-in for the runtime's helper: a fresh process in a new mount namespace, mounting from the data
      const script = `import { executePlan } from ${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)};
        const t = executePlan(JSON.parse(process.argv[1]), '/mnt', 'im');
        const fs = await import('node:fs');
        process.stdout.write(fs.readFileSync('/mnt/usr/lib/os-release', 'utf8'));`;
      const r = await execa('unshare', ['-m', '--propagation', 'private', process.execPath, '--input-type=module', '-e', script, JSON.stringify(steps)], { reject: false, stripFinalNewline: false });
      expect(r.stderr).toBe('');
      expect(r.stdout).toMatch(/ID=busybox/);
      expect(fx.mounts()).toEqual([]);
      expect(typeof executePlan).toBe('function');
    } finally {
      await closed(img);
    }
  });

  it('a shared view: the file systems as plan() mounts them (read-write), read-only for us; the mount shares its superblock', async () => {
    const where = fx.path('mnt-shared');
    mkdirSync(where);
    const img = await openImage(simple);
    try {
      const view = openImageView(img, { shared: true });
      try {
        expect(view.shared).toBe(true);
        expect(readFileSync(join(view.root!, 'etc/os-release'), 'utf8')).toMatch(/BusyBox/);
        expect(() => writeFileSync(join(view.root!, 'im-shared'), 'x')).toThrow(/EROFS/);
        // a read-write mount of the same device while the view lives (a view that is not shared refuses it: EBUSY)
        await img.mount(where, { namespace: 'current' });
        expect(statSync(where).dev).toBe(statSync(view.root!).dev);
        writeFileSync(join(where, 'im-shared'), 'through the mount\n');
        expect(readFileSync(join(view.root!, 'im-shared'), 'utf8')).toBe('through the mount\n');
        unlinkSync(join(where, 'im-shared'));
      } finally {
        view.close();
      }
    } finally {
      await closed(img);
    }
  });

  it("mount(where, { namespace: 'current' }): in this namespace, visible here, gone on close", async () => {
    const where = fx.path('mnt-current');
    mkdirSync(where);
    const img = await openImage(simple, { readOnly: true });
    try {
      const m = await img.mount(where, { namespace: 'current' });
      expect(m.root).toBe(where);
      expect(readFileSync(join(where, 'etc/os-release'), 'utf8')).toMatch(/BusyBox/);
      expect(fx.mounts()).toHaveLength(1);
    } finally {
      await closed(img);
    }
    expect(readdirSync(where)).toEqual([]);
  });
});

describe('other layouts', () => {
  it('4096-byte sectors: the table in 4 KiB LBAs, loop devices with a 4 KiB block size', async () => {
    const { path } = fx.image('im-4k.raw', [{ type: NATIVE.root, size: 24, fs: 'ext4', tree: fx.busybox() }], { sectorSize: 4096 });
    const img = await openImage(path);
    try {
      expect(img.dissected.sectorSize).toBe(4096);
      expect(readFileSync(`/sys/block/${img.devices.root!.path.slice(5)}/queue/logical_block_size`, 'utf8').trim()).toBe('4096');
      const m = await img.mount();
      expect(readFileSync(join(m.root, 'etc/os-release'), 'utf8')).toMatch(/BusyBox/);
    } finally {
      await closed(img);
    }
  });

  it('an MBR with a bootable 0x83 partition', async () => {
    const { path } = fx.image('im-mbr.raw', [{ type: '83', size: 24, fs: 'ext4', tree: fx.busybox() }], { label: 'dos', bootable: true });
    const img = await openImage(path, { readOnly: true });
    try {
      expect(img.dissected.table).toBe('mbr');
      const m = await img.mount();
      expect(existsSync(join(m.root, 'bin/busybox'))).toBe(true);
    } finally {
      await closed(img);
    }
  });

  it('a file system without a partition table, and a squashfs one (read-only by nature)', async () => {
    const ext4 = fx.fsImage('ext4', 24, fx.busybox());
    const img = await openImage(ext4);
    try {
      expect(img.dissected.singleFileSystem).toBe(true);
      expect(img.devices.root!.offset).toBe(0);
      const m = await img.mount();
      expect(existsSync(join(m.root, 'bin/busybox'))).toBe(true);
    } finally {
      await closed(img);
    }
    const sq = fx.fsImage('squashfs', 24, fx.busybox());
    const s = await openImage(sq);
    try {
      expect(s.devices.root!.readOnly).toBe(true);
      const m = await s.mount();
      expect(mountsOf(m.pid!, '/tmp/root')[0]).toMatchObject({ fstype: 'squashfs' });
    } finally {
      await closed(s);
    }
  });

  it('erofs and xfs partitions; a mount point missing in a read-only root is a clear error', async () => {
    const { path: noSrv } = fx.image('im-erofs-nosrv.raw', [
      { type: NATIVE.root, size: 16, fs: 'erofs', tree: fx.busybox() }, // the whole tree: no /srv in it
      { type: TYPES.srv, size: 8, fs: 'ext4' },
    ]);
    const bad = await openImage(noSrv);
    try {
      await expect(bad.mount()).rejects.toThrow(`${noSrv}: mounting the srv partition (ext4, ${bad.devices.srv!.path}): cannot make or open /srv (EROFS)`);
    } finally {
      await closed(bad);
    }
    const { path } = fx.image('im-erofs-xfs.raw', [
      { type: NATIVE.root, size: 16, fs: 'erofs', tree: fx.split().root },
      { type: TYPES.srv, size: 320, fs: 'xfs' },
    ]);
    const img = await openImage(path);
    try {
      expect([img.dissected.partitions.root!.fstype, img.dissected.partitions.srv!.fstype]).toEqual(['erofs', 'xfs']);
      const m = await img.mount();
      expect(mountsOf(m.pid!, '/tmp/root').map((x) => x.fstype)).toEqual(['erofs', 'xfs']);
      writeFileSync(join(m.root, 'srv/im'), 'x');
    } finally {
      await closed(img);
    }
  });

  it('a root of another architecture is used, as systemd 252 uses it; its architecture is reported', async () => {
    const { path } = fx.image('im-foreign.raw', [{ type: NATIVE.foreign, size: 24, fs: 'ext4', tree: fx.busybox() }]);
    const img = await openImage(path, { readOnly: true });
    try {
      expect(img.dissected.partitions.root!.architecture).toBe(process.arch === 'arm64' ? 'x86-64' : 'arm64');
    } finally {
      await closed(img);
    }
  });

  it('an ESP (vfat) is left out by default; with bootPartitions it goes to /efi as systemd 252 puts it', async () => {
    const { path } = fx.image('im-esp.raw', [
      { type: TYPES.esp, size: 16, fs: 'vfat' },
      { type: NATIVE.root, size: 24, fs: 'ext4', tree: fx.busybox() },
    ]);
    const img = await openImage(path, { readOnly: true });
    try {
      expect(img.dissected.partitions.esp).toMatchObject({ number: 1, fstype: 'vfat' });
      expect(Object.keys(img.devices)).toEqual(['root']);
      const m = await img.mount();
      expect(mountsOf(m.pid!, '/tmp/root').map((x) => x.target)).toEqual(['/tmp/root']);
    } finally {
      await closed(img);
    }
    const boot = await openImage(path, { bootPartitions: true }); // writable: /efi can be made
    try {
      expect(Object.keys(boot.devices)).toEqual(['root', 'esp']);
      if (/\svfat$/m.test(readFileSync('/proc/filesystems', 'utf8'))) {
        const m = await boot.mount();
        // /efi is missing and there is no empty /boot in the busybox tree: /efi, made
        expect(mountsOf(m.pid!, '/tmp/root').map((x) => [x.target, x.fstype])).toEqual([['/tmp/root', 'ext4'], ['/tmp/root/efi', 'vfat']]);
      } else {
        // this kernel has no vfat: the error systemd gives for it
        await expect(boot.mount()).rejects.toThrow(/mounting the esp partition \(vfat, \/dev\/loop\d+\): File system type not supported or not known\./);
      }
    } finally {
      await closed(boot);
    }
  });

  it('no root: "No suitable root partition found in image." and nothing left', async () => {
    const { path } = fx.image('im-noroot.raw', [{ type: TYPES.home, size: 8, fs: 'ext4' }]);
    await expect(openImage(path)).rejects.toThrow(`${path}: No suitable root partition found in image`);
    expect(fx.loops()).toEqual([]);
    expect(existsSync(join(fx.dir, '.#im-noroot.raw.lck'))).toBe(false);
  });
});

describe('refusals leave nothing behind', () => {
  it('hostile and empty images: one line naming the image, no loop device, no lock file', async () => {
    const empty = fx.path('im-empty.raw');
    writeFileSync(empty, '');
    const bad = fx.path('im-badcrc.raw');
    execaSync('cp', [simple, bad]);
    execaSync('dd', [`of=${bad}`, 'bs=1', 'seek=540', 'count=4', 'conv=notrunc', 'status=none'], { input: Buffer.from('LIES') }); // primary header
    execaSync('dd', [`of=${bad}`, 'bs=1', `seek=${readFileSync(bad).length - 512 + 28}`, 'count=4', 'conv=notrunc', 'status=none'], { input: Buffer.from('LIES') }); // backup
    const overlap = fx.path('im-overlap.raw'); // sfdisk would not write this one
    writeFileSync(
      overlap,
      buildGpt({
        sectors: 65536,
        partitions: [
          { type: { role: 'root', arch: 'x86-64' }, first: 2048, last: 42047 },
          { type: { role: 'home' }, first: 4096, last: 8191 },
        ],
      }),
    );
    for (const [img, msg] of [
      [empty, `${empty}: Couldn't identify a suitable partition table or file system: the image is empty (0 bytes).`],
      [bad, `${bad}: Couldn't identify a suitable partition table or file system: primary GPT header (LBA 1, 512-byte sectors): header CRC32 mismatch`],
      [overlap, `${overlap}: GPT partitions 1 (LBA 2048-42047) and 2 (LBA 4096-8191) overlap.`],
    ] as const) {
      const err = await openImage(img).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ImageError);
      expect((err as Error).message.split('\n')).toHaveLength(1);
      expect((err as Error).message.startsWith(msg)).toBe(true);
    }
    expect(fx.loops()).toEqual([]);
    expect(readdirSync(fx.dir).filter((f) => f.endsWith('.lck'))).toEqual([]);
  });

  it('a Verity signature partition: refused (no dm-verity here); Verity data alone: a notice, as systemd gives', async () => {
    const { path: sig } = fx.image('im-vsig.raw', [
      { type: NATIVE.root === TYPES.rootX86_64 ? TYPES.rootX86_64 : NATIVE.root, size: 24, fs: 'ext4', tree: fx.busybox() },
      ...(NATIVE.root === TYPES.rootX86_64
        ? [
            { type: TYPES.rootVerityX86_64, size: 1 },
            { type: TYPES.rootVeritySigX86_64, size: 1 },
          ]
        : []),
    ]);
    if (NATIVE.root === TYPES.rootX86_64) {
      await expect(openImage(sig)).rejects.toThrow(/signed Verity root hash .* dm-verity is not supported by this nspawn build/);
      const { path: v } = fx.image('im-verity.raw', [
        { type: TYPES.rootX86_64, size: 24, fs: 'ext4', tree: fx.busybox() },
        { type: TYPES.rootVerityX86_64, size: 1 },
      ]);
      const img = await openImage(v, { readOnly: true });
      expect(img.warnings).toEqual([
        `Note: image ${v} contains verity information, but no root hash specified and no embedded root hash signature found! Proceeding without integrity checking.`,
      ]);
      await closed(img);
    }
    expect(fx.loops()).toEqual([]);
  });

  it('fsck.ext4 -a runs where e2fsck would do something (not cleanly unmounted), not on a clean file system', async () => {
    const old = { lastcheck: '20000101' };
    const { path, offsets } = fx.image('im-dirty.raw', [
      { type: NATIVE.root, size: 16, fs: 'ext4', tree: fx.split().root, superblock: { ...old, state: '0' } },
      { type: TYPES.home, size: 8, fs: 'ext4', superblock: old },
    ]);
    const lastcheck = (off: number) => readFileSync(path).readUInt32LE(off + 1024 + 0x40);
    const y2000 = Date.UTC(2000, 0, 1) / 1000;
    expect([lastcheck(offsets[0]!), lastcheck(offsets[1]!)]).toEqual([y2000, y2000]);
    const img = await openImage(path);
    await closed(img);
    expect(lastcheck(offsets[0]!)).toBeGreaterThan(Date.now() / 1000 - 3600); // checked now
    expect(lastcheck(offsets[1]!)).toBe(y2000); // clean: e2fsck was not started
  });

  it('fsck failing on a writable partition: "File system check on image failed." after the loop devices were made: none left', async () => {
    const { path } = fx.image('im-corrupt.raw', [{ type: NATIVE.root, size: 16, fs: 'ext4', tree: fx.split().root, corrupt: true }]);
    await expect(openImage(path)).rejects.toMatchObject({ code: 'EUCLEAN', message: expect.stringMatching(/File system check on image failed/) });
    expect(await fx.noLoopsLeft()).toEqual([]);
    expect(readdirSync(fx.dir).filter((f) => f.endsWith('.lck'))).toEqual([]);
  });

  it('a mount that fails (a file system the kernel lacks, or garbage): the holder ends, close leaves nothing', async () => {
    const { path } = fx.image('im-garbage.raw', [{ type: NATIVE.root, size: 8, fs: 'ext4' }]);
    // an ext4 signature over a superblock that makes no sense
    execaSync('dd', [`of=${path}`, 'bs=1', `seek=${(1 << 20) + 1024}`, 'count=32', 'conv=notrunc', 'status=none'], { input: Buffer.alloc(32, 0xff) });
    const img = await openImage(path, { fsck: false });
    try {
      await expect(img.mount()).rejects.toThrow(/mounting the root partition \(ext4, \/dev\/loop\d+\): Failed to mount image/);
    } finally {
      await closed(img);
    }
  });
});

describe('kill -9 of the owner', () => {
  const hold = (args: string[], wrap: string[] = []) => {
    const argv = [...wrap, process.execPath, new URL('./fixtures/hold.mjs', import.meta.url).pathname, ...args];
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    return new Promise<{ child: typeof child; loops: string[]; holder: number | null }>((resolve, reject) => {
      let out = '';
      let err = '';
      child.stderr.on('data', (d) => (err += d));
      child.stdout.on('data', (d) => {
        out += d;
        if (out.includes('\n')) resolve({ child, ...(JSON.parse(out) as { loops: string[]; holder: number | null }) });
      });
      child.once('exit', (c) => reject(new Error(`hold exited ${c}: ${err}`)));
    });
  };
  const killed = (child: ReturnType<typeof spawn>) => new Promise<void>((r) => (child.once('exit', () => r()), child.kill('SIGKILL')));

  it('holding the loop devices only: the kernel detaches them', async () => {
    const h = await hold([simple, 'open']);
    expect(fx.loops()).toHaveLength(1);
    await killed(h.child);
    expect(await fx.noLoopsLeft()).toEqual([]);
    await closed(await openImage(simple)); // the lock went with it (its files are removed by this exclusive holder)
  });

  it('mounted in a holder: the holder dies with its owner, its mounts and the loop devices with it', async () => {
    const h = await hold([full, 'private']);
    expect(h.holder).toBeGreaterThan(0);
    expect(mountsOf(h.holder!, '/tmp/root')).toHaveLength(6);
    expect(fx.loops()).toHaveLength(6);
    await killed(h.child);
    const until = Date.now() + 10000;
    while (alive(h.holder!) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    expect(alive(h.holder!)).toBe(false);
    expect(await fx.noLoopsLeft()).toEqual([]);
    expect(fx.mounts()).toEqual([]);
    // and the lock is free again
    const img = await openImage(full);
    await closed(img);
  });

  it('a process that ends without close(): it still ends, and leaves no holder, loop device or lock file', async () => {
    const h = await hold([full, 'forget']);
    await new Promise<void>((r) => (h.child.exitCode !== null ? r() : h.child.once('exit', () => r())));
    expect(h.child.exitCode).toBe(0);
    const until = Date.now() + 10000;
    while (alive(h.holder!) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    expect(alive(h.holder!)).toBe(false);
    expect(await fx.noLoopsLeft()).toEqual([]);
    expect(readdirSync(fx.dir).filter((f) => f.endsWith('.lck'))).toEqual([]);
    expect(existsSync(globalLockPath(full)!)).toBe(false);
  });

  it("mounted in the owner's own namespace (namespace: 'current' under unshare -m): gone with the namespace", async () => {
    const where = fx.path('mnt-kill');
    mkdirSync(where);
    const h = await hold([simple, 'current', where], ['unshare', '-m', '--propagation', 'private']);
    expect(fx.loops()).toHaveLength(1);
    expect(fx.mounts()).toEqual([]); // not in ours
    await killed(h.child);
    expect(await fx.noLoopsLeft()).toEqual([]);
    await closed(await openImage(simple));
  });
});
