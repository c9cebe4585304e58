import { beforeEach, describe, expect, it } from 'vitest';
import {
  type CgroupFs,
  collectMachineScope,
  createMachineCgroup,
  releaseMachineSlice,
  machineHierarchies,
  machineScope,
  parseProcCgroup,
  readMachineStats,
  recordingCgroupFs,
  type CgroupPlacement,
  type SliceMarker,
  unitNameEscape,
  unitNameUnescape,
} from './cgroup.js';
import { type CgroupLayout, cgroupLayoutFromMountinfo } from './host.js';
import { ContainerError } from './errors.js';

/** This project's VMs: v1 controllers, name=systemd and cgroup2 at /sys/fs/cgroup/unified. */
const HYBRID_MOUNTINFO = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw`;
const HYBRID = cgroupLayoutFromMountinfo(HYBRID_MOUNTINFO);
const LEGACY = cgroupLayoutFromMountinfo(HYBRID_MOUNTINFO.split('\n').filter((l) => !l.includes('cgroup2')).join('\n'));
const UNIFIED: CgroupLayout = { kind: 'unified' };

const err = (code: string) => Object.assign(new Error(`${code} (fake)`), { code });

/**
 * A cgroup file system in memory: one tree per mount, a process is in one cgroup per hierarchy, rmdir refuses a
 * cgroup with processes or children (EBUSY), a v1 cpuset without CPUs takes no process (ENOSPC), cgroup.kill and
 * cgroup.events work on the unified one. Writes to other files are kept in `writes`.
 */
class FakeCgroupFs implements CgroupFs {
  dirs = new Map<string, { id: bigint; files: Map<string, string> }>();
  where = new Map<string, Map<number, string>>(); // mount -> pid -> dir
  writes: string[] = [];
  chowned: string[] = [];
  killed: number[] = [];
  private nextId = 1n;
  constructor(
    readonly mounts: Array<{ mount: string; unified: boolean; cpuset?: boolean; files?: Record<string, string> }>,
    readonly layout: CgroupLayout,
  ) {
    for (const m of mounts) {
      this.dirs.set(m.mount, { id: this.nextId++, files: new Map(Object.entries({ ...this.defaults(m), ...(m.cpuset ? { 'cpuset.cpus': '0-1', 'cpuset.mems': '0' } : {}), ...m.files })) });
      this.where.set(m.mount, new Map());
    }
  }
  private defaults(m: { unified: boolean; cpuset?: boolean }): Record<string, string> {
    const f: Record<string, string> = {};
    if (m.unified) Object.assign(f, { 'cgroup.controllers': '', 'cgroup.subtree_control': '', 'cpu.stat': 'usage_usec 0\n' });
    if (m.cpuset) Object.assign(f, { 'cpuset.cpus': '', 'cpuset.mems': '' });
    return f;
  }
  private mountOf(p: string) {
    const m = this.mounts.filter((x) => p === x.mount || p.startsWith(`${x.mount}/`)).sort((a, b) => b.mount.length - a.mount.length)[0];
    if (!m) throw err('ENOENT');
    return m;
  }
  private split(p: string) {
    const i = p.lastIndexOf('/');
    return { dir: p.slice(0, i), name: p.slice(i + 1) };
  }
  procsIn(dir: string): number[] {
    const m = this.mountOf(dir);
    return [...this.where.get(m.mount)!].filter(([, d]) => d === dir).map(([pid]) => pid);
  }
  children(dir: string): string[] {
    return [...this.dirs.keys()].filter((d) => d.startsWith(`${dir}/`) && !d.slice(dir.length + 1).includes('/'));
  }
  /** puts PID in DIR (a process of the host, or of a container) */
  place(pid: number, dir: string) {
    this.where.get(this.mountOf(dir).mount)!.set(pid, dir);
  }
  mkdir(p: string) {
    const m = this.mountOf(p);
    if (this.dirs.has(p)) throw err('EEXIST');
    if (!this.dirs.has(this.split(p).dir)) throw err('ENOENT');
    const files = new Map(Object.entries(this.defaults(m)));
    if (m.unified) {
      const parent = this.dirs.get(this.split(p).dir)!.files;
      files.set('cgroup.controllers', parent.get('cgroup.subtree_control') ?? '');
      files.set('cgroup.kill', '');
    }
    this.dirs.set(p, { id: this.nextId++, files });
  }
  rmdir(p: string) {
    if (!this.dirs.has(p)) throw err('ENOENT');
    if (this.procsIn(p).length > 0 || this.children(p).length > 0) throw err('EBUSY');
    this.dirs.delete(p);
  }
  read(p: string): string {
    const { dir, name } = this.split(p);
    const d = this.dirs.get(dir);
    if (!d) throw err('ENOENT');
    if (name === 'cgroup.procs') return this.procsIn(dir).map((x) => `${x}\n`).join('');
    if (name === 'cgroup.events' && this.mountOf(dir).unified) return `populated ${this.populated(dir) ? 1 : 0}\nfrozen 0\n`;
    // what a child may enable is what its parent enables for its children, whenever that changes
    if (name === 'cgroup.controllers' && this.mountOf(dir).mount !== dir) return this.read(`${this.split(dir).dir}/cgroup.subtree_control`);
    const v = d.files.get(name);
    if (v === undefined) throw err('ENOENT');
    return v;
  }
  populated(dir: string): boolean {
    return this.procsIn(dir).length > 0 || this.children(dir).some((c) => this.populated(c));
  }
  write(p: string, ...values: string[]) {
    for (const v of values) this.writeOne(p, v);
  }
  writeOne(p: string, data: string) {
    const { dir, name } = this.split(p);
    const d = this.dirs.get(dir);
    if (!d) throw err('ENOENT');
    const m = this.mountOf(dir);
    if (name === 'cgroup.procs') {
      const pid = Number(data);
      if (m.cpuset && d.files.get('cpuset.cpus') === '') throw err('ENOSPC');
      this.where.get(m.mount)!.set(pid, dir);
      return;
    }
    if (name === 'cgroup.kill') {
      for (const [pid, at] of [...this.where.get(m.mount)!]) if (at === dir || at.startsWith(`${dir}/`)) this.kill(pid);
      return;
    }
    if (!d.files.has(name) && !['devices.allow', 'devices.deny'].includes(name) && !/^(cpu|memory|pids|blkio)\./.test(name)) throw err('ENOENT');
    this.writes.push(`${p} ${data}`);
    if (name === 'cgroup.subtree_control') d.files.set(name, [d.files.get(name), ...data.split(' ').map((x) => x.slice(1))].filter((x) => x).join(' '));
    else if (!name.startsWith('devices.')) d.files.set(name, data);
  }
  exists(p: string) {
    const { dir, name } = this.split(p);
    return this.dirs.has(p) || (this.dirs.get(dir)?.files.has(name) ?? false);
  }
  subdirs(p: string) {
    if (!this.dirs.has(p)) throw err('ENOENT');
    return this.children(p).map((c) => this.split(c).name);
  }
  chown(p: string) {
    this.chowned.push(p);
  }
  id(p: string) {
    const d = this.dirs.get(p);
    if (!d) throw err('ENOENT');
    return d.id;
  }
  kill(pid: number) {
    this.killed.push(pid);
    for (const w of this.where.values()) w.delete(pid);
  }
}

function hybridFs(): FakeCgroupFs {
  const v1 = ['cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'freezer', 'blkio', 'pids', 'systemd'];
  return new FakeCgroupFs(
    [{ mount: '/sys/fs/cgroup/unified', unified: true }, ...v1.map((c) => ({ mount: `/sys/fs/cgroup/${c}`, unified: false, cpuset: c === 'cpuset' }))],
    HYBRID,
  );
}
class MemMarker implements SliceMarker {
  marked = false;
  has = () => this.marked;
  set = () => void (this.marked = true);
  clear = () => void (this.marked = false);
}
let marker = new MemMarker();
/** What the helper does with a placement (native/cgroup.c): the container's PID 1 ends up in every scope. */
function clone(fs: FakeCgroupFs, placement: CgroupPlacement, pid: number) {
  for (const v of placement.v1) fs.place(pid, v.scope.replace(/\/tasks$/, ''));
  if (placement.unified) fs.place(pid, placement.unified.scope);
}
let noWait = { sleep: async () => {}, removeTimeoutMs: 50, sliceMarker: marker };
beforeEach(() => {
  marker = new MemMarker();
  noWait = { sleep: async () => {}, removeTimeoutMs: 50, sliceMarker: marker };
});
const SCOPE = 'machine.slice/machine-bbox.scope';

describe('names', () => {
  it('escapes the machine name like unit_name_escape()', () => {
    expect(unitNameEscape('bbox')).toBe('bbox');
    expect(unitNameEscape('my-box')).toBe('my\\x2dbox');
    expect(unitNameEscape('.hidden')).toBe('\\x2ehidden');
    expect(unitNameEscape('a/b c')).toBe('a-b\\x20c');
    expect(unitNameEscape('x:y_z.w')).toBe('x:y_z.w');
    expect(unitNameEscape('ü')).toBe('\\xc3\\xbc');
    expect(machineScope('web-1')).toEqual({ unit: 'machine-web\\x2d1.scope', path: 'machine.slice/machine-web\\x2d1.scope' });
  });

  it('unescapes unit names (unit_name_unescape()), the inverse of unitNameEscape()', () => {
    for (const n of ['bbox', 'my-box', '.hidden', 'a/b c', 'x:y_z.w', 'ü', 'box1-8efa133f713df59c']) expect(unitNameUnescape(unitNameEscape(n))).toBe(n);
    expect(unitNameUnescape('web\\x2d1')).toBe('web-1');
    expect(unitNameUnescape('bad\\x2')).toBeUndefined();
  });

  it('lists the hierarchies: unified first, then name=systemd, then the controllers systemd uses; not cpuset, freezer or named ones', () => {
    expect(machineHierarchies(HYBRID).map((h) => `${h.key || '(unified)'} ${h.mount}`)).toEqual([
      '(unified) /sys/fs/cgroup/unified',
      'name=systemd /sys/fs/cgroup/systemd',
      'cpu /sys/fs/cgroup/cpu',
      'cpuacct /sys/fs/cgroup/cpuacct',
      'memory /sys/fs/cgroup/memory',
      'devices /sys/fs/cgroup/devices',
      'blkio /sys/fs/cgroup/blkio',
      'pids /sys/fs/cgroup/pids',
    ]);
    // co-mounted controllers count when one of them is systemd's
    const comounted: CgroupLayout = {
      kind: 'legacy',
      hierarchies: [
        { name: 'systemd', options: 'name=systemd' },
        { name: 'net_cls,net_prio', options: 'net_cls,net_prio' },
        { name: 'cpu,cpuacct', options: 'cpu,cpuacct' },
        { name: 'perf_event', options: 'perf_event' },
        { name: 'hugetlb', options: 'hugetlb' },
      ],
    };
    expect(machineHierarchies(comounted).map((h) => h.key)).toEqual(['name=systemd', 'cpu,cpuacct']);
    expect(machineHierarchies(LEGACY)[0]!.key).toBe('name=systemd');
    expect(machineHierarchies(UNIFIED)).toEqual([{ key: '', mount: '/sys/fs/cgroup', unified: true }]);
    expect(machineHierarchies({ kind: 'none' })).toEqual([]);
    const elogind: CgroupLayout = { kind: 'legacy', hierarchies: [{ name: 'elogind', options: 'name=elogind' }, { name: 'cpu,cpuacct', options: 'cpuacct,cpu' }] };
    expect(machineHierarchies(elogind).map((h) => h.key)).toEqual(['cpu,cpuacct']);
  });

  it('reads /proc/PID/cgroup', () => {
    const m = parseProcCgroup('9:name=systemd:/\n4:memory:/process_api/x\n2:cpuacct,cpu:/a\n0::/payload\n');
    expect([...m]).toEqual([
      ['name=systemd', '/'],
      ['memory', '/process_api/x'],
      ['cpu,cpuacct', '/a'],
      ['', '/payload'],
    ]);
  });
});

describe('createMachineCgroup on a hybrid host', () => {
  it('makes the scope in each of its hierarchies, with the v1 device rules, and nothing in cpuset or freezer; says where the helper puts the container', async () => {
    const fs = hybridFs();
    for (const m of fs.mounts) fs.place(100, m.mount); // the helper, where Node is
    fs.place(100, '/sys/fs/cgroup/memory'); // (its memory cgroup is somewhere else below)
    const cg = createMachineCgroup({ name: 'bbox', layout: HYBRID, fs, v1DeviceRules: ['c 1:3 rwm', 'c 136:* rw'], ...noWait });
    expect(cg.path).toBe(SCOPE);
    expect(cg.dirs.map((d) => d.dir)).toEqual(machineHierarchies(HYBRID).map((h) => `${h.mount}/${SCOPE}`));
    expect(cg.unifiedDir).toBe(`/sys/fs/cgroup/unified/${SCOPE}`);
    expect(cg.v1Devices).toBe(true);
    expect(fs.writes.filter((w) => w.includes('devices.'))).toEqual([
      `/sys/fs/cgroup/devices/${SCOPE}/devices.deny a`,
      `/sys/fs/cgroup/devices/${SCOPE}/devices.allow c 1:3 rwm`,
      `/sys/fs/cgroup/devices/${SCOPE}/devices.allow c 136:* rw`,
    ]);
    expect([...fs.dirs.keys()].filter((d) => /\/(cpuset|freezer)\/machine/.test(d))).toEqual([]);

    // the helper's own cgroups: the root everywhere but memory
    const home = parseProcCgroup(machineHierarchies(HYBRID).map((h, i) => `${i}:${h.key}:${h.key === 'memory' ? '/process_api/x' : '/'}`).join('\n'));
    const placement = cg.placement(home);
    expect(placement.unified).toEqual({ scope: `/sys/fs/cgroup/unified/${SCOPE}`, home: '/sys/fs/cgroup/unified/cgroup.procs' });
    expect(placement.v1.map((v) => `${v.scope} ${v.home}`)).toEqual(
      machineHierarchies(HYBRID)
        .filter((h) => !h.unified)
        .map((h) => `${h.mount}/${SCOPE}/tasks ${h.mount}${h.key === 'memory' ? '/process_api/x' : ''}/tasks`),
    );
    clone(fs, placement, 1234);
    for (const d of cg.dirs) expect(fs.procsIn(d.dir), d.dir).toEqual([1234]);
    expect(() => cg.check()).not.toThrow();

    fs.kill(1234); // the container ends
    expect(await cg.remove()).toEqual([]);
    expect([...fs.dirs.keys()].filter((d) => d.includes('machine'))).toEqual([]);
    expect(fs.killed).toEqual([1234]); // (only by the test)
  });

  it('the last nspawn to leave machine.slice empty removes it, also when another one made it', async () => {
    const fs = hybridFs();
    const a = createMachineCgroup({ name: 'a', layout: HYBRID, fs, ...noWait });
    expect(marker.marked).toBe(true);
    const b = createMachineCgroup({ name: 'b', layout: HYBRID, fs, ...noWait });
    expect(await a.remove()).toEqual([]);
    expect(fs.dirs.has('/sys/fs/cgroup/unified/machine.slice/machine-b.scope')).toBe(true);
    expect(marker.marked).toBe(true);
    expect(await b.remove()).toEqual([]);
    expect([...fs.dirs.keys()].filter((d) => d.includes('machine'))).toEqual([]);
    expect(marker.marked).toBe(false);
  });

  it('for the helper (hand-over), the ops make machine.slice again before each scope when it is there now: another nspawn may remove it first', async () => {
    const fs = hybridFs();
    const a = createMachineCgroup({ name: 'a', layout: HYBRID, fs, ...noWait });
    const rec = recordingCgroupFs(fs, 'b');
    createMachineCgroup({ name: 'b', layout: HYBRID, fs: rec, ...noWait });
    const mkdirs = rec.ops.filter((o) => o.kind === 'mkdir').map((o) => `${o.path}${o.kind === 'mkdir' && o.exclusive ? ' exclusive' : ''}`);
    expect(mkdirs).toEqual(machineHierarchies(HYBRID).flatMap((h) => [`${h.mount}/machine.slice`, `${h.mount}/machine.slice/machine-b.scope exclusive`]));
    // every op in a slice comes after that slice's mkdir (the helper's retry starts from the first op)
    for (const [i, o] of rec.ops.entries()) {
      const slice = /^(.*\/machine\.slice)\//.exec(o.path)?.[1];
      if (slice) expect(rec.ops.slice(0, i).some((x) => x.kind === 'mkdir' && x.path === slice), `${o.kind} ${o.path}`).toBe(true);
    }
    // a's teardown removes the empty slice before the helper runs the ops: each mkdir can still succeed in order
    expect(await a.remove()).toEqual([]);
    expect(fs.dirs.has('/sys/fs/cgroup/unified/machine.slice')).toBe(false);
    for (const o of rec.ops) if (o.kind === 'mkdir') fs.mkdir(o.path);
    expect(fs.dirs.has('/sys/fs/cgroup/unified/machine.slice/machine-b.scope')).toBe(true);
  });

  it('for the helper, with no machine.slice yet: one mkdir of it (made here), then the scope', () => {
    const fs = hybridFs();
    const rec = recordingCgroupFs(fs, 'c');
    createMachineCgroup({ name: 'c', layout: HYBRID, fs: rec, ...noWait });
    const unified = rec.ops.filter((o) => o.kind === 'mkdir' && o.path.startsWith('/sys/fs/cgroup/unified/')).map((o) => o.path);
    expect(unified).toEqual(['/sys/fs/cgroup/unified/machine.slice', '/sys/fs/cgroup/unified/machine.slice/machine-c.scope']);
  });

  it('keepSlice: machine.slice stays between a daemon\'s containers; releaseMachineSlice() gives it up', async () => {
    const fs = hybridFs();
    const a = createMachineCgroup({ name: 'a', layout: HYBRID, fs, ...noWait, keepSlice: true });
    expect(await a.remove()).toEqual([]);
    expect(fs.dirs.has('/sys/fs/cgroup/unified/machine.slice')).toBe(true);
    expect(fs.dirs.has('/sys/fs/cgroup/unified/machine.slice/machine-a.scope')).toBe(false);
    expect(marker.marked).toBe(true);
    releaseMachineSlice(HYBRID, fs, marker);
    expect([...fs.dirs.keys()].filter((d) => d.includes('machine'))).toEqual([]);
    expect(marker.marked).toBe(false);
  });

  it('leaves a machine.slice it did not make, and never touches other machines', async () => {
    const fs = hybridFs();
    const ours = machineHierarchies(HYBRID).map((h) => h.mount);
    for (const m of ours) {
      fs.mkdir(`${m}/machine.slice`);
      fs.mkdir(`${m}/machine.slice/machine-other.scope`);
    }
    fs.place(7, `/sys/fs/cgroup/unified/machine.slice/machine-other.scope`);
    const cg = createMachineCgroup({ name: 'bbox', layout: HYBRID, fs, ...noWait });
    clone(fs, cg.placement(new Map()), 100);
    fs.kill(100);
    expect(await cg.remove()).toEqual([]);
    for (const m of ours) {
      expect(fs.dirs.has(`${m}/machine.slice/machine-other.scope`)).toBe(true);
      expect(fs.dirs.has(`${m}/${SCOPE}`)).toBe(false);
    }
    expect(fs.procsIn('/sys/fs/cgroup/unified/machine.slice/machine-other.scope')).toEqual([7]);
    expect(fs.killed).toEqual([100]);
  });

  it('refuses a machine of the same name that is running, naming its cgroup, and leaves it alone', async () => {
    const fs = hybridFs();
    const first = createMachineCgroup({ name: 'bbox', layout: HYBRID, fs, ...noWait });
    clone(fs, first.placement(new Map()), 100);
    const before = [...fs.dirs.keys()];
    // holding the name's run lock or not: a scope with processes is someone's
    expect(() => createMachineCgroup({ name: 'bbox', layout: HYBRID, fs, ...noWait, nameLocked: true })).toThrow(
      new ContainerError(`Failed to allocate the cgroup of machine bbox: /sys/fs/cgroup/unified/${SCOPE} is in use (is machine bbox already running?)`),
    );
    expect(() => createMachineCgroup({ name: 'bbox', layout: HYBRID, fs, ...noWait })).toThrow(
      new ContainerError(`Failed to allocate the cgroup of machine bbox: /sys/fs/cgroup/unified/${SCOPE} is in use (is machine bbox already running?)`),
    );
    expect([...fs.dirs.keys()]).toEqual(before);
    for (const d of first.dirs) expect(fs.procsIn(d.dir)).toEqual([100]);
  });

  it('replaces a scope a gone run left behind (empty, with the container\'s own sub-cgroups) when it holds the name\'s run lock, however new', () => {
    const fs = hybridFs();
    const old = createMachineCgroup({ name: 'bbox', layout: HYBRID, fs, ...noWait });
    fs.mkdir(`/sys/fs/cgroup/unified/${SCOPE}/init.scope`);
    const oldId = fs.id(old.unifiedDir!);
    const cg = createMachineCgroup({ name: 'bbox', layout: HYBRID, fs, v1DeviceRules: ['c 1:3 rwm'], ...noWait, nameLocked: true });
    expect(fs.id(cg.unifiedDir!)).not.toBe(oldId);
    expect(fs.dirs.has(`/sys/fs/cgroup/unified/${SCOPE}/init.scope`)).toBe(false);
    expect(() => cg.check()).not.toThrow();
  });

  it('without the name\'s run lock, refuses an existing scope even when it is empty (another start may be setting it up), and leaves it', () => {
    const fs = hybridFs();
    const first = createMachineCgroup({ name: 'bbox', layout: HYBRID, fs, ...noWait });
    const before = [...fs.dirs.keys()];
    expect(() => createMachineCgroup({ name: 'bbox', layout: HYBRID, fs, ...noWait })).toThrow(/is in use \(is machine bbox already running\?\)/);
    expect([...fs.dirs.keys()]).toEqual(before);
    expect(() => first.check()).not.toThrow();
  });

  it('notices when its scope was replaced before the container went in', () => {
    const fs = hybridFs();
    const cg = createMachineCgroup({ name: 'bbox', layout: HYBRID, fs, ...noWait });
    for (const d of [...cg.dirs].reverse()) fs.rmdir(d.dir);
    for (const d of cg.dirs) fs.mkdir(d.dir);
    expect(() => cg.check()).toThrow(new ContainerError(`Failed to allocate the cgroup of machine bbox: /sys/fs/cgroup/unified/${SCOPE} is in use (is machine bbox already running?)`));
  });

  it('kills what is left in its own scope after the container (cgroup.kill), and only there', async () => {
    const fs = hybridFs();
    fs.place(5, '/sys/fs/cgroup/unified');
    const cg = createMachineCgroup({ name: 'bbox', layout: HYBRID, fs, ...noWait });
    fs.mkdir(`${cg.unifiedDir}/payload`);
    fs.place(300, `${cg.unifiedDir}/payload`);
    fs.place(300, `/sys/fs/cgroup/memory/${SCOPE}`);
    expect(await cg.remove()).toEqual([]);
    expect(fs.killed).toEqual([300]);
    expect(fs.procsIn('/sys/fs/cgroup/unified')).toEqual([5]);
    expect([...fs.dirs.keys()].filter((d) => d.includes('machine'))).toEqual([]);
  });

  it('on a legacy host it kills by PID, and says what it could not remove', async () => {
    const v1 = ['memory', 'systemd'];
    const fs = new FakeCgroupFs(v1.map((c) => ({ mount: `/sys/fs/cgroup/${c}`, unified: false })), LEGACY);
    const layout: CgroupLayout = { kind: 'legacy', hierarchies: [{ name: 'memory', options: 'memory' }, { name: 'systemd', options: 'name=systemd' }] };
    const cg = createMachineCgroup({ name: 'bbox', layout, fs, ...noWait });
    fs.place(400, `/sys/fs/cgroup/systemd/${SCOPE}`);
    expect(await cg.remove()).toEqual([]);
    expect(fs.killed).toEqual([400]);
    // a process that does not die
    const cg2 = createMachineCgroup({ name: 'bbox', layout, fs, ...noWait });
    fs.place(401, `/sys/fs/cgroup/memory/${SCOPE}`);
    fs.kill = (pid: number) => void fs.killed.push(pid);
    expect(await cg2.remove()).toEqual([`Failed to remove cgroup /sys/fs/cgroup/memory/${SCOPE}: it still has processes.`]);
    expect(fs.dirs.has('/sys/fs/cgroup/memory/machine.slice')).toBe(true);
    expect(fs.dirs.has(`/sys/fs/cgroup/systemd/${SCOPE}`)).toBe(false);
  });

  it('abandon() removes what it made, kills nothing', () => {
    const fs = hybridFs();
    const cg = createMachineCgroup({ name: 'bbox', layout: HYBRID, fs, ...noWait });
    cg.abandon();
    expect([...fs.dirs.keys()].filter((d) => d.includes('machine'))).toEqual([]);
    expect(fs.killed).toEqual([]);
  });

  it('hands the systemd and unified directories to a user namespace\'s root', () => {
    const fs = hybridFs();
    createMachineCgroup({ name: 'bbox', layout: HYBRID, fs, owner: 65536, ...noWait });
    expect(fs.chowned.filter((p) => p.endsWith('.scope'))).toEqual([`/sys/fs/cgroup/unified/${SCOPE}`, `/sys/fs/cgroup/systemd/${SCOPE}`]);
    expect(fs.chowned.every((p) => p.includes(`/unified/${SCOPE}`) || p.includes(`/systemd/${SCOPE}`))).toBe(true);
    expect(fs.chowned).toContain(`/sys/fs/cgroup/unified/${SCOPE}/cgroup.procs`);
  });

  it('fails clearly when a setting is refused, and takes back what it made', () => {
    const fs = hybridFs();
    const write = fs.writeOne.bind(fs);
    fs.writeOne = (p: string, d: string) => (p.endsWith('devices.allow') ? (() => { throw err('EINVAL'); })() : write(p, d));
    expect(() => createMachineCgroup({ name: 'bbox', layout: HYBRID, fs, v1DeviceRules: ['c 1:3 rwm'], ...noWait })).toThrow(
      /Failed to allocate the cgroup of machine bbox: EINVAL/,
    );
    expect([...fs.dirs.keys()].filter((d) => d.includes('machine'))).toEqual([]);
  });

  it('fails clearly when a hierarchy refuses, and takes back what it made', () => {
    const fs = hybridFs();
    const mkdir = fs.mkdir.bind(fs);
    fs.mkdir = (p: string) => (p.includes('/pids/') ? (() => { throw err('EACCES'); })() : mkdir(p));
    expect(() => createMachineCgroup({ name: 'bbox', layout: HYBRID, fs, ...noWait })).toThrow(/Failed to allocate the cgroup of machine bbox: EACCES/);
    expect([...fs.dirs.keys()].filter((d) => d.includes('machine'))).toEqual([]);
  });
});

describe('createMachineCgroup on a unified host', () => {
  it('turns on memory and pids accounting for machine.slice and the scope', () => {
    const fs = new FakeCgroupFs([{ mount: '/sys/fs/cgroup', unified: true, files: { 'cgroup.controllers': 'cpu io memory pids', 'cgroup.subtree_control': 'cpu' } }], UNIFIED);
    const cg = createMachineCgroup({ name: 'bbox', layout: UNIFIED, fs, v1DeviceRules: ['c 1:3 rwm'], ...noWait });
    expect(fs.writes).toEqual(['/sys/fs/cgroup/cgroup.subtree_control +memory +pids', '/sys/fs/cgroup/machine.slice/cgroup.subtree_control +memory +pids']);
    expect(cg.v1Devices).toBe(false);
    expect(cg.unifiedDir).toBe(`/sys/fs/cgroup/${SCOPE}`);
  });
});

describe('--slice= and --property= without systemd', () => {
  const slice = { unit: 'foo-bar.slice', path: 'foo.slice/foo-bar.slice' };
  const memoryMax = { name: 'MemoryMax', unified: [{ controller: 'memory', file: 'memory.max', value: '1048576\n' }], legacy: [{ controller: 'memory', file: 'memory.limit_in_bytes', value: '1048576\n' }] };
  const cpuset = { name: 'AllowedCPUs', unified: [{ controller: 'cpuset', file: 'cpuset.cpus', value: '0\n' }], legacy: [] };
  it('the scope goes in the slice, each level made and removed again (innermost first), machine.slice untouched', async () => {
    const fs = hybridFs();
    const cg = createMachineCgroup({ name: 'bbox', layout: HYBRID, fs, slice, ...noWait });
    expect(cg.path).toBe('foo.slice/foo-bar.slice/machine-bbox.scope');
    expect(cg.dirs.map((d) => d.dir)).toEqual(machineHierarchies(HYBRID).map((h) => `${h.mount}/foo.slice/foo-bar.slice/machine-bbox.scope`));
    expect(marker.marked).toBe(false);
    expect([...fs.dirs.keys()].filter((d) => d.includes('machine.slice'))).toEqual([]);
    expect(cg.removal().removeSlices.slice(0, 2)).toEqual(['/sys/fs/cgroup/unified/foo.slice/foo-bar.slice', '/sys/fs/cgroup/unified/foo.slice']);
    expect(await cg.remove()).toEqual([]);
    expect([...fs.dirs.keys()].filter((d) => d.includes('.slice'))).toEqual([]);
  });
  it('a slice that was there stays; the root slice puts the scope at the top', async () => {
    const fs = hybridFs();
    fs.mkdir('/sys/fs/cgroup/unified/foo.slice');
    const cg = createMachineCgroup({ name: 'bbox', layout: HYBRID, fs, slice, ...noWait });
    expect(await cg.remove()).toEqual([]);
    expect(fs.dirs.has('/sys/fs/cgroup/unified/foo.slice')).toBe(true);
    expect(fs.dirs.has('/sys/fs/cgroup/unified/foo.slice/foo-bar.slice')).toBe(false);
    const top = createMachineCgroup({ name: 'top', layout: HYBRID, fs, slice: { unit: '-.slice', path: '' }, ...noWait });
    expect(top.path).toBe('machine-top.scope');
    expect(await top.remove()).toEqual([]);
  });
  it('collectMachineScope() finds a gone run\'s scope in its slice and removes it; the slice stays', async () => {
    const fs = hybridFs();
    createMachineCgroup({ name: 'gone', layout: HYBRID, fs, slice, ...noWait });
    expect((await collectMachineScope('gone', { layout: HYBRID, fs, sleep: async () => {} })).found).toBe(false);
    const c = await collectMachineScope('gone', { layout: HYBRID, fs, sleep: async () => {}, slice: slice.path });
    expect(c).toEqual({ found: true, left: [] });
    expect([...fs.dirs.keys()].filter((d) => d.includes('machine-gone'))).toEqual([]);
    expect(fs.dirs.has('/sys/fs/cgroup/unified/foo.slice/foo-bar.slice')).toBe(true);
  });
  it('refuses a path that is not made of slices', () => {
    const fs = hybridFs();
    for (const path of ['../x.slice', 'foo.slice/../../x.slice', 'foo', '/foo.slice'])
      expect(() => createMachineCgroup({ name: 'bbox', layout: HYBRID, fs, slice: { unit: 'x.slice', path }, ...noWait }), path).toThrow(/not a slice path/);
  });
  it('properties: the v1 files on a hybrid host (no controllers in the unified one), a warning for what has no v1 file', () => {
    const fs = hybridFs();
    const warnings: string[] = [];
    createMachineCgroup({ name: 'bbox', layout: HYBRID, fs, attributes: [memoryMax, cpuset], warn: (m) => warnings.push(m), ...noWait });
    expect(fs.writes.filter((w) => /memory\.|cpuset\./.test(w))).toEqual([`/sys/fs/cgroup/memory/${SCOPE}/memory.limit_in_bytes 1048576\n`]);
    expect(warnings).toEqual(['AllowedCPUs= has no effect: the cgroup controller it needs is not available on this host.']);
  });
  it('properties: the unified files on a unified host, their controllers enabled down to the scope', () => {
    const fs = new FakeCgroupFs([{ mount: '/sys/fs/cgroup', unified: true, files: { 'cgroup.controllers': 'cpu io memory pids', 'cgroup.subtree_control': '' } }], UNIFIED);
    fs.dirs.get('/sys/fs/cgroup')!.files.set('memory.max', '');
    const warnings: string[] = [];
    createMachineCgroup({ name: 'bbox', layout: UNIFIED, fs, slice, attributes: [memoryMax], warn: (m) => warnings.push(m), ...noWait });
    expect(fs.writes).toEqual([
      '/sys/fs/cgroup/cgroup.subtree_control +memory +pids',
      '/sys/fs/cgroup/foo.slice/cgroup.subtree_control +memory +pids',
      '/sys/fs/cgroup/foo.slice/foo-bar.slice/cgroup.subtree_control +memory +pids',
      '/sys/fs/cgroup/foo.slice/foo-bar.slice/machine-bbox.scope/memory.max 1048576\n',
    ]);
    expect(warnings).toEqual([]);
  });
});

describe('readMachineStats', () => {
  it('reads the v1 controllers on a hybrid host', () => {
    const fs = hybridFs();
    createMachineCgroup({ name: 'bbox', layout: HYBRID, fs, ...noWait });
    const set = (p: string, v: string) => fs.dirs.get(p.slice(0, p.lastIndexOf('/')))!.files.set(p.slice(p.lastIndexOf('/') + 1), v);
    set(`/sys/fs/cgroup/cpuacct/${SCOPE}/cpuacct.usage`, '123456789\n');
    set(`/sys/fs/cgroup/memory/${SCOPE}/memory.usage_in_bytes`, '4096\n');
    set(`/sys/fs/cgroup/pids/${SCOPE}/pids.current`, '3\n');
    expect(readMachineStats('bbox', { layout: HYBRID, fs })).toEqual({ cpuUsageNs: 123456789, memoryBytes: 4096, tasks: 3 });
    expect(readMachineStats('other', { layout: HYBRID, fs })).toBeUndefined();
  });

  it('reads cgroup2 on a unified host, and says undefined for what is missing', () => {
    const fs = new FakeCgroupFs([{ mount: '/sys/fs/cgroup', unified: true, files: { 'cgroup.controllers': 'memory pids' } }], UNIFIED);
    createMachineCgroup({ name: 'bbox', layout: UNIFIED, fs, ...noWait });
    const files = fs.dirs.get(`/sys/fs/cgroup/${SCOPE}`)!.files;
    files.set('cpu.stat', 'usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n');
    files.set('memory.current', '8192\n');
    expect(readMachineStats('bbox', { layout: UNIFIED, fs })).toEqual({ cpuUsageNs: 2500000, memoryBytes: 8192, tasks: undefined });
    files.set('pids.current', '2\n');
    expect(readMachineStats('bbox', { layout: UNIFIED, fs })?.tasks).toBe(2);
  });
});

describe('collectMachineScope (the scope of a run that is gone)', () => {
  it('waits until the dying container has left the scope in every hierarchy, kills nothing, then removes it and an nspawn-made machine.slice', async () => {
    const fs = hybridFs();
    const gone = createMachineCgroup({ name: 'bbox', layout: HYBRID, fs, ...noWait });
    clone(fs, gone.placement(new Map()), 100);
    fs.mkdir(`/sys/fs/cgroup/unified/${SCOPE}/init.scope`);
    fs.place(101, `/sys/fs/cgroup/unified/${SCOPE}/init.scope`);
    let waits = 0;
    const sleep = async () => {
      waits++;
      // the kernel ends the container's PID namespace a moment later
      if (waits === 3) for (const m of fs.mounts) fs.where.get(m.mount)!.clear();
    };
    const r = await collectMachineScope('bbox', { layout: HYBRID, fs, sleep, sliceMarker: marker });
    expect(r).toEqual({ found: true, left: [] });
    expect(waits).toBe(3);
    expect(fs.killed).toEqual([]);
    expect([...fs.dirs.keys()].filter((d) => d.includes('machine'))).toEqual([]);
    expect(marker.marked).toBe(false);
  });

  it('leaves a scope whose processes do not go, and says where; leaves other machines alone', async () => {
    const fs = hybridFs();
    const other = createMachineCgroup({ name: 'other', layout: HYBRID, fs, ...noWait });
    clone(fs, other.placement(new Map()), 7);
    const gone = createMachineCgroup({ name: 'bbox', layout: HYBRID, fs, ...noWait });
    clone(fs, gone.placement(new Map()), 100);
    const r = await collectMachineScope('bbox', { layout: HYBRID, fs, sleep: async () => {}, timeoutMs: 0, sliceMarker: marker });
    expect(r.found).toBe(true);
    expect(r.left).toEqual(machineHierarchies(HYBRID).map((h) => `${h.mount}/${SCOPE}`));
    expect(fs.killed).toEqual([]);
    expect(fs.procsIn(`/sys/fs/cgroup/unified/machine.slice/machine-other.scope`)).toEqual([7]);
    for (const d of gone.dirs) expect(fs.dirs.has(d.dir)).toBe(true);
  });

  it('finds nothing where the scope does not exist', async () => {
    const fs = hybridFs();
    expect(await collectMachineScope('bbox', { layout: HYBRID, fs, sleep: async () => {}, sliceMarker: marker })).toEqual({ found: false, left: [] });
  });
});
