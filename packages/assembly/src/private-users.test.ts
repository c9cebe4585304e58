/** The private-users extension's decisions with stand-in OS effects (no root): what it picks, chowns, maps. */
import { describe, expect, it } from 'vitest';
import { UidRangeError, type PickOptions, type UserDb } from '@nspawn/uidrange';
import type { ContainerConfig } from '@nspawn/runtime';
import type { HelperPlan } from '@nspawn/runtime';
import { hostIdsInRange, privateUsersExtension, type PrivateUsersDeps } from './private-users.js';
import { baseConfig, basePlan } from './test/fixtures.js';

function harness(userns: ContainerConfig['userns'], o: { idmap?: boolean; users?: number[]; dir?: string; handoff?: boolean } = {}) {
  const log: string[] = [];
  const deps: PrivateUsersDeps = {
    pick: (p: PickOptions = {}) => {
      log.push(`pick first=${p.first} machine=${p.machine}`);
      return {
        base: 0x5a0000,
        count: 65536,
        lockPath: '/x',
        keepAcrossExec: () => {
          log.push('keep across exec');
          return 7;
        },
        release: () => log.push('release'),
      };
    },
    shift: (path, base, count) => {
      log.push(`chown ${path} ${base} ${count}`);
      return 'changed';
    },
    idmapOk: () => o.idmap ?? true,
    users: (): UserDb => ({ hasUid: (u) => (o.users ?? []).includes(u), hasGid: () => false, ids: () => o.users ?? [] }),
  };
  const cfg = baseConfig({ directory: o.dir ?? '/', machineName: 'box', ...(userns ? { userns } : {}) });
  const run = { cfg, log: (l: string) => log.push(`log ${l}`), ...(o.handoff ? { handoff: true } : {}) };
  const ext = privateUsersExtension(deps);
  return { ext, run, cfg, log };
}

describe('privateUsersExtension on a disk image (-i)', () => {
  it('reads the range off the image\'s root (its view), marks its partitions idmapped, and leaves the root directory alone', async () => {
    const h = harness({ shift: 0, range: 65536, pick: true }, { dir: '/run/nspawn/image-root' });
    // the view of the root partition: here a directory owned by root (base 0)
    h.cfg.image = { path: '/m/box.raw', steps: [], view: { root: '/' } };
    await h.ext.setup!(h.run);
    expect(h.cfg.userns!.shift).toBe(0x5a0000);
    expect(h.cfg.image.idmap).toBe(true);
    const plan: HelperPlan = basePlan();
    h.ext.plan!(h.run, plan);
    // (the image's mounts are idmapped one by one by the helper: not the empty directory under them)
    expect(plan.idmap).toBeUndefined();
    expect(h.log).toEqual(['pick first=0 machine=box']);
  });
  it('an image with only /usr: its root is an empty tmpfs, root\'s (base 0, nothing stat()ed)', async () => {
    const h = harness({ shift: 0, range: 65536, pick: true }, { dir: '/run/nspawn/image-root' });
    h.cfg.image = { path: '/m/usr.raw', steps: [], view: { usr: '/nonexistent/usr-view' } };
    await h.ext.setup!(h.run);
    expect(h.cfg.image.idmap).toBe(true);
    expect(h.log).toEqual(['pick first=0 machine=box']);
  });
  it('ownership map where idmapped mounts are not available: 252\'s refusal; auto falls back to chown, which a read-only image skips', async () => {
    const m = harness({ shift: 0, range: 65536, pick: true, ownership: 'map' }, { dir: '/run/nspawn/image-root', idmap: false });
    m.cfg.image = { path: '/m/box.raw', steps: [], view: { root: '/' } };
    expect(() => m.ext.setup!(m.run)).toThrow('ID mapped mounts are apparently not available, sorry.');
    const a = harness({ shift: 0, range: 65536, pick: true }, { dir: '/run/nspawn/image-root', idmap: false });
    a.cfg.image = { path: '/m/box.raw', steps: [], view: { root: '/' } };
    a.cfg.readOnly = true;
    await a.ext.setup!(a.run);
    expect(a.cfg.image.idmap).toBeUndefined();
    expect(a.log).toEqual(['pick first=0 machine=box']); // no chown
  });
});

describe('privateUsersExtension', () => {
  it('-U: picks (first candidate: the owner of / is root, so 0), maps by idmapped mount, releases at teardown', async () => {
    const h = harness({ shift: 0, range: 65536, pick: true });
    await h.ext.setup!(h.run);
    expect(h.cfg.userns!.shift).toBe(0x5a0000);
    const plan: HelperPlan = basePlan();
    h.ext.plan!(h.run, plan);
    expect(plan.idmap).toEqual({ shift: 0x5a0000, range: 65536 });
    await h.ext.teardown!(h.run);
    expect(h.log).toEqual(['pick first=0 machine=box', 'release']);
    expect(plan.inheritedLocks).toBeUndefined(); // not handed over: nspawn holds the lock itself
  });
  it('handed over: the range lock goes with the exec to the helper (plan.inheritedLocks, FD_CLOEXEC cleared)', async () => {
    const h = harness({ shift: 0, range: 65536, pick: true }, { handoff: true });
    await h.ext.setup!(h.run);
    const plan: HelperPlan = basePlan();
    h.ext.plan!(h.run, plan);
    expect(plan.inheritedLocks).toEqual([{ fd: 7, path: '/x', exclusive: true }]);
    expect(h.log).toEqual(['pick first=0 machine=box', 'keep across exec']);
    // a fixed range has no lock to hand over
    const f = harness({ shift: 0x80000, range: 65536, ownership: 'map' }, { handoff: true });
    await f.ext.setup!(f.run);
    const p2 = basePlan();
    f.ext.plan!(f.run, p2);
    expect(p2.inheritedLocks).toBeUndefined();
  });
  it('auto without idmapped mounts falls back to chown; map refuses', async () => {
    const h = harness({ shift: 0, range: 65536, pick: true }, { idmap: false });
    await h.ext.setup!(h.run);
    const plan = basePlan();
    h.ext.plan!(h.run, plan);
    expect(plan.idmap).toBeUndefined();
    expect(h.log).toEqual(['pick first=0 machine=box', `chown / ${0x5a0000} 65536`]);
    const m = harness({ shift: 0, range: 65536, pick: true, ownership: 'map' }, { idmap: false });
    await expect(async () => m.ext.setup!(m.run)).rejects.toThrow('ID mapped mounts are apparently not available, sorry.');
  });
  it('a fixed range: no pick; off by default; chown and map on request', async () => {
    const off = harness({ shift: 0x80000, range: 65536 });
    await off.ext.setup!(off.run);
    expect(off.log).toEqual([]);
    const ch = harness({ shift: 0x80000, range: 65536, ownership: 'chown' });
    await ch.ext.setup!(ch.run);
    expect(ch.log).toEqual([`chown / ${0x80000} 65536`]);
    const mp = harness({ shift: 0x80000, range: 65536, ownership: 'map' });
    await mp.ext.setup!(mp.run);
    const plan = basePlan();
    mp.ext.plan!(mp.run, plan);
    expect(plan.idmap).toEqual({ shift: 0x80000, range: 65536 });
  });
  it('identity maps nothing (shift 0), and is not refused for host users', async () => {
    const h = harness({ shift: 0, range: 65536, ownership: 'map' }, { users: [0, 1000] });
    await h.ext.setup!(h.run);
    const plan = basePlan();
    h.ext.plan!(h.run, plan);
    expect(plan.idmap).toBeUndefined();
  });
  it("refuses a range given by hand that holds host users' IDs", async () => {
    const h = harness({ shift: 1, range: 70000 }, { users: [0, 1000, 65534] });
    await expect(async () => h.ext.setup!(h.run)).rejects.toThrow(/UID range 1:70000 \(--private-users=\) overlaps the host's users: ID 1000/);
    expect(hostIdsInRange(0x80000, 65536, { hasUid: () => true, hasGid: () => false, ids: () => [5] }, [5])).toBeUndefined();
  });
  it('turns library errors into ContainerErrors', async () => {
    const h = harness({ shift: 0, range: 65536, pick: true });
    const ext = privateUsersExtension({
      pick: () => {
        throw new UidRangeError('Failed to pick suitable UID/GID range: Device or resource busy', 'EBUSY');
      },
      shift: () => 'changed',
      idmapOk: () => true,
      users: () => ({ hasUid: () => false, hasGid: () => false, ids: () => [] }),
    });
    await expect(async () => ext.setup!(h.run)).rejects.toMatchObject({ name: 'ContainerError', message: 'Failed to pick suitable UID/GID range: Device or resource busy' });
  });
});
