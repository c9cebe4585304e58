import { describe, expect, it } from 'vitest';
import { ContainerError } from '@nspawn/runtime';
import { cgroupAttributesFromProperties, sliceFromOption } from './scope-settings.js';

const slice = (s: string) => {
  const notices: string[] = [];
  return { ...sliceFromOption(s, (m) => notices.push(m)), notices };
};

describe('--slice= without systemd (unit_name_mangle_with_suffix(), cg_slice_to_path())', () => {
  it('lays nested slices out as systemd does', () => {
    expect(slice('foo-bar.slice')).toEqual({ unit: 'foo-bar.slice', path: 'foo.slice/foo-bar.slice', notices: [] });
    expect(slice('a-b-c.slice')).toEqual({ unit: 'a-b-c.slice', path: 'a.slice/a-b.slice/a-b-c.slice', notices: [] });
    expect(slice('machine.slice')).toEqual({ unit: 'machine.slice', path: 'machine.slice', notices: [] });
    expect(slice('-.slice')).toEqual({ unit: '-.slice', path: '', notices: [] });
  });
  it('mangles a name that is not a unit name, with 252\'s notice, and adds .slice', () => {
    expect(slice('foo')).toEqual({ unit: 'foo.slice', path: 'foo.slice', notices: [] });
    expect(slice('foo/bar')).toEqual({
      unit: 'foo-bar.slice',
      path: 'foo.slice/foo-bar.slice',
      notices: ['Invalid unit name "foo/bar" escaped as "foo-bar" (maybe you should use systemd-escape?).'],
    });
    expect(slice('a b').notices).toEqual(['Invalid unit name "a b" escaped as "a\\x20b" (maybe you should use systemd-escape?).']);
  });
  it('escapes a level that could be taken for a kernel file (cg_escape())', () => {
    expect(slice('cpu.slice').path).toBe('_cpu.slice');
  });
  it('refuses what is no slice, in allocate_scope()\'s words', () => {
    expect(() => slice('x.service')).toThrow(new ContainerError("Failed to allocate scope: Unit name 'x.service' is not a slice"));
    for (const bad of ['foo--bar.slice', '-foo.slice', 'foo-.slice']) expect(() => slice(bad), bad).toThrow(`Failed to allocate scope: Slice name ${bad} is not valid.`);
    expect(() => slice('')).toThrow(ContainerError);
  });
});

describe('--property= without systemd (cgroup_context_apply())', () => {
  const attrs = (...a: string[]) => cgroupAttributesFromProperties(a);
  it('memory, tasks: the cgroup2 file and the v1 one', () => {
    expect(attrs('MemoryMax=1M', 'TasksMax=42')).toEqual([
      { name: 'MemoryMax', unified: [{ controller: 'memory', file: 'memory.max', value: '1048576\n' }], legacy: [{ controller: 'memory', file: 'memory.limit_in_bytes', value: '1048576\n' }] },
      { name: 'TasksMax', unified: [{ controller: 'pids', file: 'pids.max', value: '42\n' }], legacy: [{ controller: 'pids', file: 'pids.max', value: '42\n' }] },
    ]);
    expect(attrs('MemoryMax=infinity')[0]!.legacy[0]!.value).toBe('-1\n');
    expect(attrs('MemoryMax=infinity')[0]!.unified[0]!.value).toBe('max\n');
    // the last assignment wins; MemoryHigh= has no v1 file
    expect(attrs('MemoryMax=1M', 'MemoryMax=2M')[0]!.legacy[0]!.value).toBe('2097152\n');
    expect(attrs('MemoryHigh=1G')).toEqual([{ name: 'MemoryHigh', unified: [{ controller: 'memory', file: 'memory.high', value: '1073741824\n' }], legacy: [] }]);
  });
  it('CPU: weight as shares on v1, the quota as cpu.max or the cfs files', () => {
    expect(attrs('CPUWeight=50')[0]).toMatchObject({ unified: [{ file: 'cpu.weight', value: '50\n' }], legacy: [{ file: 'cpu.shares', value: '512\n' }] });
    expect(attrs('CPUWeight=idle')[0]).toMatchObject({ unified: [{ file: 'cpu.idle', value: '1' }], legacy: [{ file: 'cpu.shares', value: '2\n' }] });
    expect(attrs('CPUShares=2048')[0]).toMatchObject({ unified: [{ file: 'cpu.weight', value: '200\n' }], legacy: [{ file: 'cpu.shares', value: '2048\n' }] });
    expect(attrs('CPUQuota=20%')[0]).toMatchObject({
      unified: [{ file: 'cpu.max', value: '20000 100000\n' }],
      legacy: [{ file: 'cpu.cfs_period_us', value: '100000\n' }, { file: 'cpu.cfs_quota_us', value: '20000\n' }],
    });
    // a period too short for the quota is made long enough (cgroup_cpu_adjust_period())
    expect(attrs('CPUQuota=10%', 'CPUQuotaPeriodSec=1ms')[0]!.unified[0]!.value).toBe('1000 10000\n');
  });
  it('IO weight and blkio weight, the cpuset on cgroup2 only', () => {
    expect(attrs('IOWeight=200')[0]).toMatchObject({ unified: [{ file: 'io.weight', value: 'default 200\n' }], legacy: [{ controller: 'blkio', file: 'blkio.weight', value: '1000\n' }] });
    expect(attrs('AllowedCPUs=0-2,5')[0]).toMatchObject({ unified: [{ file: 'cpuset.cpus', value: '0-2,5\n' }], legacy: [] });
  });
  it('bad assignments are refused with systemd\'s words; properties without a cgroup file are reported, not applied', () => {
    expect(() => attrs('Foo=1')).toThrow(new ContainerError('Unknown assignment: Foo=1'));
    expect(() => attrs('MemoryMax')).toThrow(new ContainerError('Not an assignment: MemoryMax'));
    expect(() => attrs('MemoryMax=lots')).toThrow(/^Failed to parse MemoryMax=lots/);
    const ignored: string[] = [];
    expect(cgroupAttributesFromProperties(['Description=x', 'KillMode=mixed'], (n) => ignored.push(n))).toEqual([]);
    expect(ignored).toEqual(['Description', 'KillMode']);
  });
});
