/**
 * shiftTree(): chown a tree into a range (systemd's path_patch_uid(), "--private-users-ownership=chown"), done by
 * the native tool: every inode gets `base | (id & 0xffff)` for its owner, its group and the IDs in its POSIX ACLs
 * (access, and default on directories); symlinks with lchown; modes put back where chown() clears set-id bits;
 * mount points are never crossed. The top directory is chowned last, so it says whether the tree carries the shift
 * (then nothing is done); while the work runs it carries the busy range 0xfffe0000, so an interrupted run is
 * redone completely next time.
 */
import { runTool } from './tool.js';
import { UID_RANGE, UidRangeError } from './candidates.js';

export type ShiftResult = 'changed' | 'unchanged';

/** systemd's refusals for chown mode, before touching anything */
export function checkShiftable(base: number, count: number): void {
  if ((base & 0xffff) !== 0 || count !== UID_RANGE)
    throw new UidRangeError(
      `Automatic UID/GID adjusting is only supported for UID/GID ranges starting at multiples of 2^16 with a range of 2^16 (got base ${base}, count ${count}).`,
      'EOPNOTSUPP',
    );
}

export function shiftTree(path: string, base: number, count: number = UID_RANGE, env?: NodeJS.ProcessEnv): ShiftResult {
  checkShiftable(base, count);
  const r = runTool(['shift', path, String(base), String(count)], ['ignore', 'pipe', 'pipe'], env);
  if (r.status === 0) return r.stdout.trim() === 'unchanged' ? 'unchanged' : 'changed';
  if (r.status === 74) throw new UidRangeError(`${r.stderr} (${path})`, 'EBADE');
  if (r.status === 95) throw new UidRangeError(r.stderr, 'EOPNOTSUPP');
  throw new UidRangeError(r.stderr || `uidrange-tool shift ended with ${r.status}`, 'EIO');
}
