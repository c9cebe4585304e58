import { describe, expect, it } from 'vitest';
import { type DissectOptions, dissectImage, varPartitionUuid } from './dissect.js';
import { ImageError } from './errors.js';
import { GPT_FLAG_GROWFS, GPT_FLAG_NO_AUTO, GPT_FLAG_NO_BLOCK_IO_PROTOCOL, GPT_FLAG_READ_ONLY } from './partition-types.js';
import { bufferReader } from './reader.js';
import { type BuildPartition, buildGpt, buildMbr, fs } from './test/build.js';

const IMG = '/var/lib/machines/im-test.raw';
const X86_64: DissectOptions = { architecture: { native: 'x86-64', secondary: 'x86' } };
const ARM64: DissectOptions = { architecture: { native: 'arm64', secondary: 'arm' } };
const MiB = 2048; // sectors

/** A GPT image with these partitions, each 1 MiB from LBA 2048 on, an ext4 signature in each */
function image(parts: Array<Omit<BuildPartition, 'first' | 'last'> & { fs?: keyof typeof fs | null }>, sectorSize: 512 | 4096 = 512) {
  const per = sectorSize === 512 ? MiB : 256;
  const start = sectorSize === 512 ? 2048 : 256;
  const buf = buildGpt({
    sectorSize,
    sectors: start + per * parts.length + (sectorSize === 512 ? 64 : 16),
    partitions: parts.map((p, i) => ({ ...p, first: start + i * per, last: start + (i + 1) * per - 1 })),
  });
  parts.forEach((p, i) => {
    if (p.fs !== null) fs[p.fs ?? 'ext4'](buf, (start + i * per) * sectorSize);
  });
  return buf;
}
const dissect = (buf: Buffer, opts: DissectOptions = X86_64) => dissectImage(bufferReader(buf), IMG, opts);
function refused(buf: Buffer, opts: DissectOptions = X86_64): ImageError {
  try {
    dissect(buf, opts);
  } catch (e) {
    expect(e).toBeInstanceOf(ImageError);
    expect((e as Error).message.includes('\n')).toBe(false);
    expect((e as Error).message).toContain(IMG);
    return e as ImageError;
  }
  throw new Error('not refused');
}

describe('the Discoverable Partitions', () => {
  it('root, usr, home, srv, var, tmp, esp, xbootldr and swap of x86-64, with their file systems', () => {
    const d = dissect(
      image([
        { type: { role: 'root', arch: 'x86-64' }, name: 'root' },
        { type: { role: 'usr', arch: 'x86-64' }, fs: 'squashfs' },
        { type: { role: 'home' }, fs: 'btrfs' },
        { type: { role: 'srv' }, fs: 'xfs' },
        { type: { role: 'var' } },
        { type: { role: 'tmp' } },
        { type: { role: 'esp' }, fs: 'vfat' },
        { type: { role: 'xbootldr' }, fs: 'vfat' },
        { type: { role: 'swap' }, fs: 'swap' },
      ]),
    );
    expect(d.table).toBe('gpt');
    expect(Object.keys(d.partitions).sort()).toEqual(['esp', 'home', 'root', 'srv', 'swap', 'tmp', 'usr', 'var', 'xbootldr']);
    expect(d.partitions.root).toMatchObject({ number: 1, architecture: 'x86-64', rw: true, fstype: 'ext4', label: 'root', offset: 2048 * 512, size: MiB * 512 });
    expect(d.partitions.usr).toMatchObject({ number: 2, fstype: 'squashfs', rw: false }); // necessarily read-only
    expect(d.partitions.home!.fstype).toBe('btrfs');
    expect(d.partitions.srv!.fstype).toBe('xfs');
    expect(d.partitions.esp!.fstype).toBe('vfat');
    expect(d.partitions.swap!.fstype).toBe('swap');
    expect(d.entries.map((e) => e.designator)).toEqual(['root', 'usr', 'home', 'srv', 'var', 'tmp', 'esp', 'xbootldr', 'swap']);
  });

  it('arm64 types on an arm64 machine', () => {
    const d = dissect(image([{ type: { role: 'root', arch: 'arm64' } }, { type: { role: 'usr', arch: 'arm64' } }]), ARM64);
    expect(d.partitions.root!.architecture).toBe('arm64');
    expect(d.partitions.usr!.architecture).toBe('arm64');
  });

  it('4K-sector images', () => {
    const d = dissect(image([{ type: { role: 'root', arch: 'x86-64' } }, { type: { role: 'home' } }], 4096));
    expect(d.sectorSize).toBe(4096);
    expect(d.partitions.root).toMatchObject({ offset: 256 * 4096, size: 256 * 4096, fstype: 'ext4' });
    expect(d.partitions.home!.fstype).toBe('ext4');
  });

  it('the read-only flag (bit 60) makes a partition read-only; grow-fs (59) is recorded, off when read-only', () => {
    const d = dissect(
      image([
        { type: { role: 'root', arch: 'x86-64' }, attrs: GPT_FLAG_READ_ONLY | GPT_FLAG_GROWFS },
        { type: { role: 'home' }, attrs: GPT_FLAG_GROWFS },
      ]),
    );
    expect(d.partitions.root).toMatchObject({ rw: false, growfs: false });
    expect(d.partitions.home).toMatchObject({ rw: true, growfs: true });
  });

  it('the no-auto flag (bit 63) hides a partition; the ESP is hidden by the no-block-io-protocol bit instead', () => {
    const d = dissect(
      image([
        { type: { role: 'root', arch: 'x86-64' } },
        { type: { role: 'home' }, attrs: GPT_FLAG_NO_AUTO },
        { type: { role: 'esp' }, attrs: GPT_FLAG_NO_AUTO, fs: 'vfat' },
        { type: { role: 'xbootldr' }, attrs: GPT_FLAG_NO_BLOCK_IO_PROTOCOL },
      ]),
    );
    expect(d.partitions.home).toBeUndefined();
    expect(d.partitions.esp).toBeDefined(); // no-auto means nothing to the ESP
    expect(d.partitions.xbootldr).toBeDefined();
    expect(d.entries[1]).toMatchObject({ ignored: 'the no-auto flag (bit 63)' });
    const e = dissect(image([{ type: { role: 'root', arch: 'x86-64' } }, { type: { role: 'esp' }, attrs: GPT_FLAG_NO_BLOCK_IO_PROTOCOL }]));
    expect(e.partitions.esp).toBeUndefined();
  });

  it('a root marked no-auto is no root: "No suitable root partition found in image." (ENXIO)', () => {
    const e = refused(image([{ type: { role: 'root', arch: 'x86-64' }, attrs: GPT_FLAG_NO_AUTO }, { type: { role: 'home' } }]));
    expect(e.code).toBe('ENXIO');
    expect(e.message).toBe(`${IMG}: No suitable root partition found in image (no root or /usr partition for x86-64, no single generic Linux partition).`);
  });

  it('missing root: ENXIO', () => {
    expect(refused(image([{ type: { role: 'home' } }, { type: { role: 'srv' } }])).code).toBe('ENXIO');
  });

  it('only /usr: accepted (USR_NO_ROOT), the root will be a tmpfs', () => {
    const d = dissect(image([{ type: { role: 'usr', arch: 'x86-64' } }]));
    expect(d.partitions.root).toBeUndefined();
    expect(d.partitions.usr).toBeDefined();
  });

  it('the first home (srv, var, tmp...) wins', () => {
    const d = dissect(image([{ type: { role: 'root', arch: 'x86-64' } }, { type: { role: 'home' } }, { type: { role: 'home' } }]));
    expect(d.partitions.home!.number).toBe(2);
    expect(d.entries[2]!.ignored).toBe('a second home partition (the first one wins)');
  });

  it('several roots of the native architecture: the newest label wins (strverscmp_improved)', () => {
    const d = dissect(
      image([
        { type: { role: 'root', arch: 'x86-64' }, name: 'fooOS_1.9' },
        { type: { role: 'root', arch: 'x86-64' }, name: 'fooOS_1.10' },
        { type: { role: 'root', arch: 'x86-64' }, name: 'fooOS_1.10~rc1' },
      ]),
    );
    expect(d.partitions.root!.number).toBe(2);
    expect(d.partitions.root!.label).toBe('fooOS_1.10');
    expect(d.entries[0]!.ignored).toBe('older than partition 2 (root)');
    expect(d.entries[2]!.ignored).toBe('not newer than partition 2 (root)');
  });

  it('equal labels: the first one stays', () => {
    const d = dissect(image([{ type: { role: 'root', arch: 'x86-64' }, name: 'a' }, { type: { role: 'root', arch: 'x86-64' }, name: 'a' }]));
    expect(d.partitions.root!.number).toBe(1);
  });
});

describe('architectures', () => {
  it('no native root: the secondary architecture (x86 on x86-64) is used', () => {
    const d = dissect(image([{ type: { role: 'root', arch: 'x86' } }, { type: { role: 'usr', arch: 'x86' } }]));
    expect(d.partitions.root).toMatchObject({ architecture: 'x86', number: 1 });
    expect(d.partitions.usr).toMatchObject({ architecture: 'x86' });
    expect(d.partitions['root-secondary']).toBeUndefined();
  });

  it('a root of another architecture is used when nothing else is (systemd 252 does not refuse it)', () => {
    const d = dissect(image([{ type: { role: 'root', arch: 'arm64' } }]));
    expect(d.partitions.root).toMatchObject({ architecture: 'arm64' });
  });

  it('the native root wins over others; theirs are left unused', () => {
    const d = dissect(image([{ type: { role: 'root', arch: 'arm64' } }, { type: { role: 'root', arch: 'x86-64' } }, { type: { role: 'root', arch: 'x86' } }]));
    expect(d.partitions.root).toMatchObject({ architecture: 'x86-64', number: 2 });
    expect(d.entries[0]!.ignored).toMatch(/root-other: another architecture/);
    expect(d.entries[2]!.ignored).toMatch(/root-secondary: the secondary architecture/);
  });

  it('root and /usr of different (foreign) architectures: refused (EADDRNOTAVAIL)', () => {
    const e = refused(image([{ type: { role: 'root', arch: 'arm64' } }, { type: { role: 'usr', arch: 'riscv64' } }]));
    expect(e.code).toBe('EADDRNOTAVAIL');
    expect(e.message).toMatch(/the root partition is for arm64, the \/usr partition for riscv64/);
  });

  it('a native root drops a /usr of another architecture', () => {
    const d = dissect(image([{ type: { role: 'root', arch: 'x86-64' } }, { type: { role: 'usr', arch: 'x86' } }]));
    expect(d.partitions.usr).toBeUndefined();
    expect(d.entries[1]!.ignored).toMatch(/usr-secondary/);
  });

  it('a foreign root takes its /usr along, as systemd does: a native /usr is then left out', () => {
    const d = dissect(image([{ type: { role: 'root', arch: 'arm64' } }, { type: { role: 'usr', arch: 'x86-64' } }]));
    expect(d.partitions.root!.architecture).toBe('arm64');
    expect(d.partitions.usr).toBeUndefined();
  });
});

describe('Verity', () => {
  it('root Verity data is recognised (hasVerity), not used for mounting', () => {
    const d = dissect(image([{ type: { role: 'root', arch: 'x86-64' } }, { type: { role: 'root-verity', arch: 'x86-64' }, fs: null }]));
    expect(d.hasVerity).toBe(true);
    expect(d.hasVeritySig).toBe(false);
    expect(d.partitions['root-verity']).toMatchObject({ fstype: 'DM_verity_hash', rw: false });
  });
  it('Verity data without its root: "No root partition for specified root hash found." (EADDRNOTAVAIL)', () => {
    const e = refused(image([{ type: { role: 'root-verity', arch: 'x86-64' }, fs: null }, { type: { role: 'home' } }]));
    expect(e.code).toBe('EADDRNOTAVAIL');
    expect(e.message).toMatch(/No root partition for specified root hash found \(a root Verity partition without its root partition\)/);
  });
  it('a signature without Verity data: EADDRNOTAVAIL', () => {
    const e = refused(image([{ type: { role: 'root', arch: 'x86-64' } }, { type: { role: 'root-verity-sig', arch: 'x86-64' }, fs: null }]));
    expect(e.message).toMatch(/a root Verity signature partition without Verity data/);
  });
  it('Verity for root with a separate /usr: EADDRNOTAVAIL; Verity for both: ENOTUNIQ', () => {
    expect(
      refused(image([{ type: { role: 'root', arch: 'x86-64' } }, { type: { role: 'root-verity', arch: 'x86-64' }, fs: null }, { type: { role: 'usr', arch: 'x86-64' } }]))
        .message,
    ).toMatch(/a Verity-protected root with a separate \/usr partition/);
    expect(
      refused(
        image([
          { type: { role: 'root', arch: 'x86-64' } },
          { type: { role: 'root-verity', arch: 'x86-64' }, fs: null },
          { type: { role: 'usr', arch: 'x86-64' } },
          { type: { role: 'usr-verity', arch: 'x86-64' }, fs: null },
        ]),
      ).code,
    ).toBe('ENOTUNIQ');
  });
});

describe('generic partitions and MBR', () => {
  const generic = '0fc63daf-8483-4772-8e79-3d69d8477de4';
  it('a single generic Linux partition is the root', () => {
    const d = dissect(image([{ type: generic }, { type: { role: 'home' } }]));
    expect(d.partitions.root).toMatchObject({ number: 1, fstype: 'ext4' });
    expect(d.partitions.root!.architecture).toBeUndefined();
  });
  it('two of them: "Multiple suitable root partitions found in image." (ENOTUNIQ)', () => {
    const e = refused(image([{ type: generic }, { type: generic }]));
    expect(e.code).toBe('ENOTUNIQ');
    expect(e.message).toBe(`${IMG}: Multiple suitable root partitions found in image (partitions 1, 2).`);
  });
  it('a generic partition beside a marked root is unused', () => {
    const d = dissect(image([{ type: { role: 'root', arch: 'x86-64' } }, { type: generic }]));
    expect(d.partitions.root!.number).toBe(1);
    expect(d.entries[1]!.ignored).toMatch(/generic Linux partition, unused/);
  });
  it('MBR: the bootable 0x83 partition is the root; a non-bootable one is not', () => {
    const buf = buildMbr(8192, [
      { type: 0x83, start: 2048, count: 2048, bootable: true },
      { type: 0x82, start: 4096, count: 2048 },
    ]);
    fs.ext4(buf, 2048 * 512);
    const d = dissect(buf);
    expect(d.table).toBe('mbr');
    expect(d.partitions.root).toMatchObject({ number: 1, type: '0x83', rw: true, fstype: 'ext4' });
    const nb = buildMbr(8192, [{ type: 0x83, start: 2048, count: 2048 }]);
    expect(refused(nb).message).toMatch(/no bootable 0x83 partition/);
  });
  it('MBR: two bootable 0x83 partitions are ENOTUNIQ', () => {
    const buf = buildMbr(8192, [
      { type: 0x83, start: 2048, count: 2048, bootable: true },
      { type: 0x83, start: 4096, count: 2048, bootable: true },
    ]);
    expect(refused(buf).code).toBe('ENOTUNIQ');
  });
});

describe('a file system without a partition table', () => {
  it('is the root, the whole image', () => {
    const buf = Buffer.alloc(4 << 20);
    fs.ext4(buf, 0);
    const d = dissect(buf);
    expect(d).toMatchObject({ table: 'none', singleFileSystem: true });
    expect(d.partitions.root).toMatchObject({ offset: 0, size: 4 << 20, fstype: 'ext4', rw: true, fsUuid: 'f00dfeed-0000-4000-8000-000000000001', fsLabel: 'root' });
  });
  it('a read-only one (squashfs) is mounted read-only', () => {
    const buf = Buffer.alloc(1 << 20);
    fs.squashfs(buf, 0);
    expect(dissect(buf).partitions.root).toMatchObject({ fstype: 'squashfs', rw: false });
  });
  it('swap is no root file system', () => {
    const buf = Buffer.alloc(1 << 20);
    fs.swap(buf, 0);
    expect(refused(buf).code).toBe('ENOPKG');
  });
  it('two signatures: refused as ambiguous', () => {
    const buf = Buffer.alloc(1 << 20);
    fs.ext4(buf, 0);
    fs.xfs(buf, 0);
    expect(refused(buf).message).toMatch(/more than one file system signature \(ext4, xfs\)/);
  });
});

describe('hostile or empty images', () => {
  it('0 bytes', () => {
    const e = refused(Buffer.alloc(0));
    expect(e.code).toBe('ENOPKG');
    expect(e.message).toBe(`${IMG}: Couldn't identify a suitable partition table or file system: the image is empty (0 bytes).`);
  });
  it('zeros', () => {
    expect(refused(Buffer.alloc(1 << 20)).message).toBe(`${IMG}: Couldn't identify a suitable partition table or file system (no GPT, MBR or file system signature).`);
  });
  it('a GPT without a protective MBR and nothing else: the reason is given', () => {
    const buf = buildGpt({ sectors: 4096, pmbr: false, partitions: [{ type: { role: 'root', arch: 'x86-64' }, first: 2048, last: 3000 }] });
    expect(refused(buf).message).toMatch(/without a protective MBR/);
  });
  it('a partition whose file system is ambiguous: EUCLEAN', () => {
    const buf = image([{ type: { role: 'root', arch: 'x86-64' } }]);
    fs.squashfs(buf, 2048 * 512);
    expect(refused(buf).code).toBe('EUCLEAN');
  });
});

describe('/var bound to the machine ID (off by default, as in systemd-nspawn)', () => {
  const machineId = '0123456789abcdef0123456789abcdef';
  it('derives the UUID by HMAC-SHA256, as a v4 UUID', () => {
    const u = varPartitionUuid(machineId);
    expect(u).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(varPartitionUuid(machineId)).toBe(u);
    expect(varPartitionUuid('fedcba9876543210fedcba9876543210')).not.toBe(u);
  });
  it('with varMachineId, a /var of another machine is ignored; without it, used', () => {
    const buf = image([{ type: { role: 'root', arch: 'x86-64' } }, { type: { role: 'var' }, uuid: '12345678-1234-4234-8234-123456789abc' }]);
    expect(dissect(buf).partitions.var).toBeDefined();
    const d = dissect(buf, { ...X86_64, varMachineId: machineId });
    expect(d.partitions.var).toBeUndefined();
    expect(d.entries[1]!.ignored).toMatch(/its UUID is not/);
    const ok = image([{ type: { role: 'root', arch: 'x86-64' } }, { type: { role: 'var' }, uuid: varPartitionUuid(machineId) }]);
    expect(dissect(ok, { ...X86_64, varMachineId: machineId }).partitions.var).toBeDefined();
  });
});
