import { describe, expect, it } from 'vitest';
import { type DissectedImage, dissectImage, type Designator } from './dissect.js';
import { GPT_FLAG_READ_ONLY } from './partition-types.js';
import { type PlanDevice, planMounts } from './plan.js';
import { bufferReader } from './reader.js';
import { MS_NODEV, MS_RDONLY } from './sys.js';
import { buildGpt, fs } from './test/build.js';

const X86_64 = { architecture: { native: 'x86-64', secondary: 'x86' } } as const;

function dissected(parts: Array<{ role: 'root' | 'usr' | 'home' | 'srv' | 'var' | 'tmp' | 'esp' | 'xbootldr'; attrs?: bigint; fs?: keyof typeof fs }>): DissectedImage {
  const buf = buildGpt({
    sectors: 2048 + parts.length * 2048 + 64,
    partitions: parts.map((p, i) => ({
      type: { role: p.role, ...(p.role === 'root' || p.role === 'usr' ? { arch: 'x86-64' as const } : {}) },
      first: 2048 + i * 2048,
      last: 2048 + (i + 1) * 2048 - 1,
      ...(p.attrs ? { attrs: p.attrs } : {}),
    })),
  });
  parts.forEach((p, i) => fs[p.fs ?? (p.role === 'esp' || p.role === 'xbootldr' ? 'vfat' : 'ext4')](buf, (2048 + i * 2048) * 512));
  return dissectImage(bufferReader(buf), '/im.raw', X86_64);
}
const devices = (img: DissectedImage) =>
  Object.fromEntries(Object.values(img.partitions).map((p, i) => [p.designator, { path: `/dev/loop${i}`, fd: 10 + i, offset: p.offset, size: p.size }])) as Partial<
    Record<Designator, PlanDevice>
  >;

describe('planMounts', () => {
  const all = dissected([{ role: 'root' }, { role: 'usr' }, { role: 'home' }, { role: 'srv' }, { role: 'var' }, { role: 'tmp' }, { role: 'esp' }, { role: 'xbootldr' }]);

  it('systemd’s order and places: root, /usr, /home, /srv, /var, /var/tmp; the ESP and XBOOTLDR left out by default', () => {
    const steps = planMounts(all, devices(all));
    expect(steps.map((s) => s.op === 'mount' && [s.partition, s.target, s.device.path])).toEqual([
      ['root', '', '/dev/loop0'],
      ['usr', 'usr', '/dev/loop1'],
      ['home', 'home', '/dev/loop2'],
      ['srv', 'srv', '/dev/loop3'],
      ['var', 'var', '/dev/loop4'],
      ['tmp', 'var/tmp', '/dev/loop5'],
    ]);
    expect(steps[0]).toMatchObject({ op: 'mount', fstype: 'ext4', flags: MS_NODEV, data: 'discard', mkdir: false, private: true });
    expect(steps[1]).toMatchObject({ mkdir: true });
  });

  it('with bootPartitions: XBOOTLDR at /boot and the ESP at /efi (or an empty /boot)', () => {
    const steps = planMounts(all, devices(all), { bootPartitions: true });
    expect(steps.slice(-2)).toMatchObject([
      { partition: 'xbootldr', target: 'boot', fstype: 'vfat' },
      { partition: 'esp', target: 'efi', fallback: 'boot', fstype: 'vfat' },
    ]);
  });

  it('read-only (--read-only or the flag): MS_RDONLY and norecovery where a journal would be replayed', () => {
    const ro = planMounts(all, devices(all), { readOnly: true });
    for (const s of ro) if (s.op === 'mount') expect(s).toMatchObject({ flags: MS_NODEV | MS_RDONLY, data: 'discard,norecovery' });
    const flagged = dissected([{ role: 'root', attrs: GPT_FLAG_READ_ONLY }, { role: 'home' }]);
    const steps = planMounts(flagged, devices(flagged));
    expect(steps[0]).toMatchObject({ flags: MS_NODEV | MS_RDONLY, data: 'discard,norecovery' });
    expect(steps[1]).toMatchObject({ flags: MS_NODEV, data: 'discard' });
  });

  it('uid=/gid= for file systems that take them (the ESP), as systemd passes the UID shift', () => {
    const steps = planMounts(all, devices(all), { bootPartitions: true, uidShift: 65536 });
    expect(steps.at(-1)).toMatchObject({ partition: 'esp', data: 'discard,uid=65536,gid=65536' });
    expect(steps[0]).toMatchObject({ data: 'discard' });
  });

  it('with idmap (-U, ownership map): the other file systems are marked idmapped (DISSECT_IMAGE_MOUNT_IDMAPPED)', () => {
    const steps = planMounts(all, devices(all), { bootPartitions: true, uidShift: 65536, idmap: true });
    const mounts = steps.filter((s) => s.op === 'mount');
    expect(mounts.filter((s) => s.idmap).map((s) => s.partition)).toEqual(['root', 'usr', 'home', 'srv', 'var', 'tmp']);
    expect(mounts.find((s) => s.partition === 'esp')).toMatchObject({ data: 'discard,uid=65536,gid=65536' });
    expect(mounts.find((s) => s.partition === 'esp')?.idmap).toBeUndefined();
    // no shift (identity), no idmap
    expect(planMounts(all, devices(all), { idmap: true }).some((s) => s.op === 'mount' && s.idmap)).toBe(false);
  });

  it('in the container\'s user namespace the root tmpfs of a /usr-only image gets no host uid=/gid=', () => {
    const usr = dissected([{ role: 'usr' }]);
    expect(planMounts(usr, devices(usr), { uidShift: 65536 })[0]).toMatchObject({ op: 'tmpfs', data: 'uid=65536,gid=65536' });
    expect(planMounts(usr, devices(usr), { uidShift: 65536, inUserNamespace: true })[0]).toMatchObject({ op: 'tmpfs', data: '' });
  });

  it('an image with only /usr gets a tmpfs root', () => {
    const usr = dissected([{ role: 'usr' }]);
    expect(planMounts(usr, devices(usr))).toMatchObject([
      { op: 'tmpfs', source: 'rootfs', target: '', flags: MS_NODEV },
      { op: 'mount', partition: 'usr', target: 'usr' },
    ]);
  });

  it('-x: read-only partitions below a staging tmpfs, an overlay per partition, the root moved into place', () => {
    const img = dissected([{ role: 'root' }, { role: 'usr' }, { role: 'tmp' }]);
    const steps = planMounts(img, devices(img), { overlay: true });
    expect(steps[0]).toMatchObject({ op: 'tmpfs', target: '', private: true });
    expect(steps.filter((s) => s.op === 'mount')).toMatchObject([
      { partition: 'root', target: 'lower/root', flags: MS_NODEV | MS_RDONLY, data: 'discard,norecovery' },
      { partition: 'usr', target: 'lower/usr', flags: MS_NODEV | MS_RDONLY },
      { partition: 'tmp', target: 'lower/tmp', flags: MS_NODEV | MS_RDONLY },
    ]);
    expect(steps.filter((s) => s.op === 'overlay')).toMatchObject([
      { partition: 'root', target: 'root', lower: 'lower/root', upper: 'upper/root', work: 'work/root' },
      { partition: 'usr', target: 'root/usr' },
      { partition: 'tmp', target: 'root/var/tmp' },
    ]);
    expect(steps.at(-1)).toEqual({ op: 'move', from: 'root', target: '' });
  });

  it('refuses to plan a partition without a device', () => {
    expect(() => planMounts(all, {})).toThrow('no loop device for the root partition');
  });
});
