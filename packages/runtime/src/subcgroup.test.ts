import { describe, expect, it } from 'vitest';
import type { CgroupFs } from './cgroup.js';
import { cgroupLayoutFromMountinfo } from './host.js';
import { createSubcgroup } from './subcgroup.js';
import { ContainerError } from './errors.js';

const HYBRID = cgroupLayoutFromMountinfo(`31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw`);
const SCOPE = '/machine.slice/machine-m.scope';

/** directories and the processes in each (cgroup.procs), per hierarchy; every change in `log` */
function fakeFs(dirs: string[], procs: Record<string, number[]> = {}) {
  const have = new Set(dirs);
  const log: string[] = [];
  const fs: CgroupFs = {
    mkdir(p) {
      if (have.has(p)) throw Object.assign(new Error('EEXIST'), { code: 'EEXIST' });
      if (p.startsWith('/sys/fs/cgroup/cpu/')) throw Object.assign(new Error('EROFS: read-only file system'), { code: 'EROFS' });
      have.add(p);
      log.push(`mkdir ${p}`);
    },
    rmdir: () => {
      throw new Error('not here');
    },
    read: (p) => (procs[p] ?? []).join('\n') + '\n',
    write: (p, ...d) => void log.push(`write ${p} ${d.join(' ')}`),
    exists: (p) => have.has(p),
    subdirs: () => [],
    chown: (p, u) => void log.push(`chown ${p} ${u}`),
    id: () => 1n,
    kill: () => {},
  };
  return { fs, log };
}

describe('createSubcgroup (create_subcgroup() of systemd-nspawn 252)', () => {
  it('makes payload/ in the unified and name=systemd hierarchies only, with PID 1 in it', () => {
    const { fs, log } = fakeFs([`/sys/fs/cgroup/unified${SCOPE}`, `/sys/fs/cgroup/systemd${SCOPE}`, `/sys/fs/cgroup/cpu${SCOPE}`]);
    const made = createSubcgroup({ layout: HYBRID, cgroup: SCOPE, pid: 42, fs });
    expect(made).toEqual([`/sys/fs/cgroup/unified${SCOPE}/payload`, `/sys/fs/cgroup/systemd${SCOPE}/payload`]);
    expect(log).toEqual([
      `mkdir /sys/fs/cgroup/unified${SCOPE}/payload`,
      `write /sys/fs/cgroup/unified${SCOPE}/payload/cgroup.procs 42`,
      `mkdir /sys/fs/cgroup/systemd${SCOPE}/payload`,
      `write /sys/fs/cgroup/systemd${SCOPE}/payload/cgroup.procs 42`,
    ]);
  });

  it('--keep-unit: the rest of the unit goes to supervisor/; a user namespace gets payload/', () => {
    const unit = '/system.slice/nspawn@m.service';
    const { fs, log } = fakeFs([`/sys/fs/cgroup/unified${unit}`], { [`/sys/fs/cgroup/unified${unit}/cgroup.procs`]: [7, 42, 8] });
    createSubcgroup({ layout: HYBRID, cgroup: unit, pid: 42, supervisor: true, owner: 655360, fs });
    expect(log.filter((l) => l.startsWith('write'))).toEqual([
      `write /sys/fs/cgroup/unified${unit}/payload/cgroup.procs 42`,
      `write /sys/fs/cgroup/unified${unit}/supervisor/cgroup.procs 7`,
      `write /sys/fs/cgroup/unified${unit}/supervisor/cgroup.procs 8`,
    ]);
    expect(log).toContain(`chown /sys/fs/cgroup/unified${unit}/payload 655360`);
    expect(log).toContain(`chown /sys/fs/cgroup/unified${unit}/payload/cgroup.procs 655360`);
    expect(log.some((l) => l.startsWith('chown') && l.includes('supervisor'))).toBe(false);
  });

  it('a payload/ left by an earlier boot is reused (a unified host)', () => {
    const { fs, log } = fakeFs([`/sys/fs/cgroup${SCOPE}`, `/sys/fs/cgroup${SCOPE}/payload`]);
    expect(createSubcgroup({ layout: { kind: 'unified' }, cgroup: SCOPE, pid: 5, fs })).toEqual([`/sys/fs/cgroup${SCOPE}/payload`]);
    expect(log).toEqual([`write /sys/fs/cgroup${SCOPE}/payload/cgroup.procs 5`]);
  });

  it('a cgroup in no hierarchy, or a path with .., is refused with one line', () => {
    const { fs } = fakeFs([]);
    expect(() => createSubcgroup({ layout: HYBRID, cgroup: SCOPE, pid: 5, fs })).toThrow(ContainerError);
    expect(() => createSubcgroup({ layout: HYBRID, cgroup: SCOPE, pid: 5, fs })).toThrow(/exists in no hierarchy systemd manages/);
    expect(() => createSubcgroup({ layout: HYBRID, cgroup: '/a/../b', pid: 5, fs })).toThrow(/Invalid cgroup path/);
  });
});
