/**
 * `ps`, `pause`, `resume`: the container's processes from its cgroups, and the freezer (cgroup v1 freezer.state,
 * v2 cgroup.freeze) on them.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadRecord, StateError, statusOf, type Record_ } from './state.js';

/** the deepest of the container's cgroup directories (the ones it runs in) */
function leaves(r: Record_): string[] {
  const all = r.cgroups ?? [];
  return all.filter((d) => !all.some((x) => x.startsWith(`${d}/`)));
}

/** The PIDs (host) of every process of container ID. */
export function containerPids(root: string, id: string): number[] {
  const r = loadRecord(root, id);
  const pids = new Set<number>();
  for (const d of leaves(r)) {
    try {
      for (const l of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) if (l) pids.add(Number(l));
    } catch {
      // gone
    }
  }
  if (pids.size === 0 && statusOf(root, r) !== 'stopped') pids.add(r.pid);
  return [...pids].sort((a, b) => a - b);
}

function freeze(root: string, id: string, on: boolean): void {
  const r = loadRecord(root, id);
  const status = statusOf(root, r);
  if (on && status !== 'running') throw new StateError(`container ${id} is not running`);
  if (!on && status !== 'paused') throw new StateError(`container ${id} is not paused`);
  let done = false;
  for (const d of leaves(r)) {
    if (existsSync(join(d, 'freezer.state'))) {
      writeFileSync(join(d, 'freezer.state'), on ? 'FROZEN' : 'THAWED');
      done = true;
    } else if (existsSync(join(d, 'cgroup.freeze'))) {
      writeFileSync(join(d, 'cgroup.freeze'), on ? '1' : '0');
      done = true;
    }
  }
  if (!done) throw new StateError(`container ${id}: no freezer (cgroup v1 freezer or cgroup.freeze) for its cgroups`);
}

/** `pause`: freezes every process of a running container. */
export const pauseContainer = (root: string, id: string): void => freeze(root, id, true);
/** `resume`: thaws a paused container. */
export const resumeContainer = (root: string, id: string): void => freeze(root, id, false);
