import { describe, expect, it } from 'vitest';
import { ImageError } from './errors.js';
import { bufferReader } from './reader.js';
import { GPT_MAX_ENTRIES, guidToBuffer, guidToString, readGptTable, readMbr } from './table.js';
import { buildGpt, buildMbr } from './test/build.js';

const IMG = '/images/im-test.raw';
const root = { role: 'root', arch: 'x86-64' } as const;
const home = { role: 'home' } as const;

function table(buf: Buffer) {
  const r = readGptTable(bufferReader(buf), IMG);
  if (!('table' in r)) throw new Error(`no table: ${r.reasons.join('; ')}`);
  return r.table;
}
function refusal(buf: Buffer): ImageError {
  try {
    readGptTable(bufferReader(buf), IMG);
  } catch (e) {
    expect(e).toBeInstanceOf(ImageError);
    const err = e as ImageError;
    expect(err.message.split('\n')).toHaveLength(1); // one line
    expect(err.message.startsWith(`${IMG}: `)).toBe(true); // naming the image
    return err;
  }
  throw new Error('not refused');
}

describe('GUIDs', () => {
  it('are mixed-endian on disk, both ways', () => {
    const u = '4f68bce3-e8cd-4db1-96e7-fbcaf984b709';
    const b = guidToBuffer(u);
    expect(b.subarray(0, 4).toString('hex')).toBe('e3bc684f');
    expect(guidToString(b)).toBe(u);
  });
});

describe('a valid GPT', () => {
  it('reads the primary header and the entries, numbered by slot, with names and attributes', () => {
    const buf = buildGpt({
      sectors: 4096,
      partitions: [
        { type: root, first: 2048, last: 3071, name: 'fooOS_1.0', attrs: 1n << 60n, uuid: 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee' },
        { type: home, first: 3072, last: 4000, slot: 5 },
      ],
    });
    const t = table(buf);
    expect(t).toMatchObject({ kind: 'gpt', sectorSize: 512, header: 'primary', revision: '1.0', firstUsableLba: 34n, lastUsableLba: 4062n, entrySlots: 128 });
    expect(t.diskUuid).toBe('11111111-2222-4333-8444-555555555555');
    expect(t.entries).toHaveLength(2);
    expect(t.entries[0]).toMatchObject({
      number: 1,
      typeUuid: '4f68bce3-e8cd-4db1-96e7-fbcaf984b709',
      uuid: 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee',
      label: 'fooOS_1.0',
      attributes: 1n << 60n,
      offset: 2048 * 512,
      size: 1024 * 512,
    });
    expect(t.entries[1]).toMatchObject({ number: 6, offset: 3072 * 512, size: 929 * 512 });
    expect(t.entries[1]!.label).toBeUndefined();
    expect(t.warnings).toEqual([]);
  });

  it('4096-byte sectors: LBAs count 4 KiB', () => {
    const buf = buildGpt({ sectorSize: 4096, sectors: 512, partitions: [{ type: root, first: 256, last: 500 }] });
    const t = table(buf);
    expect(t.sectorSize).toBe(4096);
    expect(t.firstUsableLba).toBe(6n); // 128 entries: 4 sectors of 4 KiB after the header
    expect(t.entries[0]).toMatchObject({ offset: 256 * 4096, size: 245 * 4096 });
  });

  it('a name of 36 UTF-16 characters, non-ASCII included', () => {
    const name = 'Wurzel-Ä€𝄞-'.padEnd(35, 'x');
    const t = table(buildGpt({ sectors: 4096, partitions: [{ type: root, first: 2048, last: 3000, name }] }));
    expect(t.entries[0]!.label).toBe(name);
  });
});

describe('the backup header', () => {
  it('is used when the primary header is corrupt (bad CRC), with a warning naming the image', () => {
    const buf = buildGpt({
      sectors: 4096,
      partitions: [{ type: root, first: 2048, last: 3000 }],
      corruptHeader: (h, w) => w === 'primary' && h.writeUInt32LE(0xdead, 88),
    });
    const t = table(buf);
    expect(t.header).toBe('backup');
    expect(t.entries).toHaveLength(1);
    expect(t.warnings).toHaveLength(1);
    expect(t.warnings[0]).toMatch(/^\/images\/im-test.raw: primary GPT header is bad \(header CRC32 mismatch \(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\)\); using the backup header at LBA 4095\.$/);
  });

  it('is used when there is no primary at all (backup-only image)', () => {
    const t = table(buildGpt({ sectors: 4096, primary: false, partitions: [{ type: root, first: 2048, last: 3000 }] }));
    expect(t.header).toBe('backup');
    expect(t.warnings[0]).toMatch(/no 'EFI PART' signature/);
  });

  it('is used when the primary entry array is corrupt', () => {
    const t = table(
      buildGpt({ sectors: 4096, partitions: [{ type: root, first: 2048, last: 3000 }], corruptEntries: (e, w) => w === 'primary' && (e[40] = e[40]! ^ 1) }),
    );
    expect(t.header).toBe('backup');
    expect(t.warnings[0]).toMatch(/entry array CRC32 mismatch/);
  });

  it('both bad: refused with the reason for each (ENOPKG)', () => {
    const e = refusal(buildGpt({ sectors: 4096, partitions: [{ type: root, first: 2048, last: 3000 }], corruptHeader: (h) => (h[30] = h[30]! ^ 0xff) }));
    expect(e.code).toBe('ENOPKG');
    expect(e.message).toMatch(/^\/images\/im-test.raw: Couldn't identify a suitable partition table or file system: primary GPT header \(LBA 1, 512-byte sectors\): header CRC32 mismatch .*; backup GPT header \(LBA 4095\): header CRC32 mismatch .*\.$/);
  });
});

describe('headers that lie (their CRC matching the lie)', () => {
  const lie = (patch: (h: Buffer) => void, both = true) =>
    buildGpt({ sectors: 4096, partitions: [{ type: root, first: 2048, last: 3000 }], patchHeader: (h, w) => (both || w === 'primary') && patch(h) });

  it('a last usable LBA beyond the end of the image', () => {
    const e = refusal(lie((h) => h.writeBigUInt64LE(1_000_000n, 48)));
    expect(e.message).toMatch(/usable LBAs 34-1000000 reach beyond the end of the image \(last LBA 4095\)/);
  });
  it('only the primary lies: the backup is used', () => {
    const t = table(lie((h) => h.writeBigUInt64LE(1_000_000n, 48), false));
    expect(t.header).toBe('backup');
  });
  it('MyLBA elsewhere', () => {
    expect(refusal(lie((h) => h.writeBigUInt64LE(7n, 24))).message).toMatch(/MyLBA 7 is not where the header is \(LBA 1\)/);
  });
  it('first usable after last usable', () => {
    expect(refusal(lie((h) => h.writeBigUInt64LE(4080n, 40))).message).toMatch(/last usable LBA 4062 is before the first usable LBA 4080/);
  });
  it('a header size below 92 or above the sector', () => {
    expect(refusal(lie((h) => h.writeUInt32LE(91, 12))).message).toMatch(/header size 91 is not between 92 and the sector size 512/);
    expect(refusal(lie((h) => h.writeUInt32LE(513, 12))).message).toMatch(/header size 513/);
  });
  it('an entry size other than 128', () => {
    expect(refusal(lie((h) => h.writeUInt32LE(256, 84))).message).toMatch(/entry size 256 is not 128/);
  });
  it('an absurd entry count: refused without reading it', () => {
    expect(refusal(lie((h) => h.writeUInt32LE(0x7fffffff, 80))).message).toMatch(/2147483647 entry slots \(more than 16384\)/);
    expect(refusal(lie((h) => h.writeUInt32LE(GPT_MAX_ENTRIES + 1, 80))).message).toMatch(/entry slots/);
    expect(refusal(lie((h) => h.writeUInt32LE(0, 80))).message).toMatch(/no entry slots/);
  });
  it('an entry array beyond the end of the image, or inside the partitions', () => {
    expect(refusal(lie((h) => h.writeBigUInt64LE(5000n, 72))).message).toMatch(/entry array \(LBA 5000-5031\) reaches beyond the end/);
    expect(refusal(lie((h) => h.writeBigUInt64LE(2048n, 72))).message).toMatch(/entry array \(LBA 2048-2079\) overlaps the usable LBAs/);
  });
  it('a revision other than 1.x', () => {
    expect(refusal(lie((h) => h.writeUInt32LE(0x00020000, 8))).message).toMatch(/revision 2\.0 is not 1\.x/);
  });
});

describe('entries that lie', () => {
  it('overlapping partitions are refused, naming both', () => {
    const e = refusal(
      buildGpt({
        sectors: 4096,
        partitions: [
          { type: root, first: 2048, last: 3000 },
          { type: home, first: 2900, last: 3500 },
        ],
      }),
    );
    expect(e.code).toBe('EBADMSG');
    expect(e.message).toBe(`${IMG}: GPT partitions 1 (LBA 2048-3000) and 2 (LBA 2900-3500) overlap.`);
  });
  it('a partition outside the usable LBAs (past the end of the file)', () => {
    const e = refusal(buildGpt({ sectors: 4096, partitions: [{ type: root, first: 2048, last: 9999 }] }));
    expect(e.message).toBe(`${IMG}: GPT partition 1 (LBA 2048-9999) lies outside the usable LBAs 34-4062.`);
  });
  it('a partition that ends before it starts', () => {
    expect(refusal(buildGpt({ sectors: 4096, partitions: [{ type: root, first: 3000, last: 2048 }] })).message).toBe(
      `${IMG}: GPT partition 1 ends (LBA 2048) before it starts (LBA 3000).`,
    );
  });
});

describe('what is not a GPT', () => {
  it('no signature anywhere: no table, no reason', () => {
    const r = readGptTable(bufferReader(Buffer.alloc(1 << 20)), IMG);
    expect(r).toEqual({ reasons: [] });
  });
  it('a GPT without a protective MBR is ignored, as libblkid does, with the reason kept', () => {
    const r = readGptTable(bufferReader(buildGpt({ sectors: 4096, pmbr: false, partitions: [{ type: root, first: 2048, last: 3000 }] })), IMG);
    expect(r).toEqual({ reasons: ['a GPT header (512-byte sectors) without a protective MBR in sector 0 (ignored, as libblkid does)'] });
  });
  it('a protective MBR without any GPT header is refused', () => {
    const buf = buildGpt({ sectors: 4096, primary: false, backup: false, partitions: [] });
    expect(refusal(buf).message).toMatch(/a protective MBR but no GPT header/);
  });
  it('a header whose signature is there but the rest is zero', () => {
    const buf = buildGpt({ sectors: 4096, partitions: [], patchHeader: (h) => h.fill(0, 8) });
    const e = refusal(buf);
    expect(e.message).toMatch(/header size 0 is not between 92/);
  });
});

describe('MBR', () => {
  it('reads the four primary entries, the boot indicator as attributes', () => {
    const img = buildMbr(4096, [{ type: 0x83, start: 2048, count: 1000, bootable: true }, { type: 0x82, start: 3048, count: 100 }]);
    const t = readMbr(bufferReader(img), IMG, img.subarray(0, 512));
    if (!('table' in t)) throw new Error('no table');
    expect(t.table.diskUuid).toBe('12345678');
    expect(t.table.entries).toMatchObject([
      { number: 1, mbrType: 0x83, attributes: 0x80n, offset: 2048 * 512, size: 1000 * 512, uuid: '12345678-01' },
      { number: 2, mbrType: 0x82, attributes: 0n },
    ]);
  });
  it('refuses entries past the end and overlapping ones', () => {
    const past = buildMbr(4096, [{ type: 0x83, start: 2048, count: 4000, bootable: true }]);
    expect(() => readMbr(bufferReader(past), IMG, past.subarray(0, 512))).toThrow(`${IMG}: MBR partition 1 (sectors 2048-6047) reaches beyond the end of the image (2097152 bytes).`);
    const over = buildMbr(4096, [
      { type: 0x83, start: 2048, count: 1000 },
      { type: 0x83, start: 2500, count: 10 },
    ]);
    expect(() => readMbr(bufferReader(over), IMG, over.subarray(0, 512))).toThrow(/MBR partitions 1 \(LBA 2048-3047\) and 2 \(LBA 2500-2509\) overlap/);
  });
  it('a sector ending in 0x55AA with bad boot indicators is no MBR', () => {
    const b = buildMbr(16, [{ type: 0x83, start: 1, count: 1 }]);
    b[446] = 0x12;
    expect(readMbr(bufferReader(b), IMG, b.subarray(0, 512))).toEqual({ reasons: ['sector 0 ends in 0x55AA but is no MBR (invalid boot indicators)'] });
  });
});
