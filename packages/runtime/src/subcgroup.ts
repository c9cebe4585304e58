/**
 * The container's cgroup when someone else made it (systemd, on a systemd host: machined's machine-NAME.scope, a
 * scope of --register=no, or the caller's unit under --keep-unit): systemd-nspawn 252's create_subcgroup() and
 * chown_cgroup(). The cgroup is delegated, ours to make children in; nothing above it is touched. In the unified
 * hierarchy and the name=systemd one (the ones systemd manages: the v1 controllers' are systemd's, read-only in a
 * nested host), payload/ below it gets the container's PID 1; with `supervisor` (--keep-unit: the cgroup is our own
 * unit's), supervisor/ gets the rest of it (nspawn, the helper), so that the unit's cgroup itself holds no process.
 * Under a user namespace payload/ is handed to the container's root. PID 1 then makes its cgroup namespace rooted at
 * payload/ (plan.cgnsLate). systemd removes the whole cgroup with its unit: nothing here is removed.
 */
import { type CgroupFs, machineHierarchies, nodeCgroupFs } from './cgroup.js';
import type { CgroupLayout } from './host.js';
import { ContainerError } from './errors.js';

export interface SubcgroupOptions {
  layout: CgroupLayout;
  /** the cgroup PID 1 is in, below each hierarchy's root (e.g. /machine.slice/machine-NAME.scope) */
  cgroup: string;
  /** the container's PID 1 (host PID) */
  pid: number;
  /** --keep-unit: what else is in CGROUP moves to supervisor/ */
  supervisor?: boolean;
  /** the container's root under a user namespace: payload/ is handed to it */
  owner?: number;
  fs?: CgroupFs;
}

/** The files chown_cgroup_path() hands to a user namespace's root. */
const CHOWN_FILES = ['.', 'cgroup.clone_children', 'cgroup.controllers', 'cgroup.events', 'cgroup.procs', 'cgroup.stat', 'cgroup.subtree_control', 'cgroup.threads', 'notify_on_release', 'tasks'];

const errCode = (e: unknown) => (e as NodeJS.ErrnoException).code;

/** create_subcgroup(): see above. Returns the payload/ directories made (or found); throws a ContainerError. */
export function createSubcgroup(opts: SubcgroupOptions): string[] {
  const fs = opts.fs ?? nodeCgroupFs;
  const rel = `/${opts.cgroup.replace(/^\/+|\/+$/g, '')}`;
  if (rel.split('/').some((p) => p === '..')) throw new ContainerError(`Invalid cgroup path: ${opts.cgroup}`);
  const hierarchies = machineHierarchies(opts.layout).filter((h) => h.unified || h.key === 'name=systemd');
  const made: string[] = [];
  const mkdir = (dir: string) => {
    try {
      fs.mkdir(dir);
    } catch (e) {
      if (errCode(e) !== 'EEXIST') throw e;
    }
  };
  for (const h of hierarchies) {
    const base = rel === '/' ? h.mount : `${h.mount}${rel}`;
    // a hierarchy systemd does not put the unit in (the unified one of a legacy host, say)
    if (!fs.exists(base)) continue;
    const payload = `${base}/payload`;
    try {
      mkdir(payload);
      fs.write(`${payload}/cgroup.procs`, String(opts.pid));
      if (opts.supervisor) {
        const supervisor = `${base}/supervisor`;
        mkdir(supervisor);
        for (const line of fs.read(`${base}/cgroup.procs`).split('\n')) {
          const pid = Number(line.trim());
          if (!line.trim() || pid === opts.pid) continue;
          try {
            fs.write(`${supervisor}/cgroup.procs`, String(pid));
          } catch (e) {
            if (errCode(e) !== 'ESRCH') throw e; // (gone meanwhile)
          }
        }
      }
      if (opts.owner !== undefined)
        for (const f of CHOWN_FILES) {
          try {
            fs.chown(f === '.' ? payload : `${payload}/${f}`, opts.owner, opts.owner);
          } catch {
            // a file this hierarchy does not have
          }
        }
    } catch (e) {
      throw new ContainerError(`Failed to create subcgroup ${payload}: ${(e as Error).message}`);
    }
    made.push(payload);
  }
  if (made.length === 0) throw new ContainerError(`Failed to create subcgroup: cgroup ${rel} exists in no hierarchy systemd manages here.`);
  return made;
}
