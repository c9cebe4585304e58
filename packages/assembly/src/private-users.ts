/**
 * Private users (-U, --private-users=, --private-users-ownership=): the range and how the tree's files meet it,
 * as systemd-nspawn 252 does it, with @nspawn/uidrange. setup() settles cfg.userns.shift (picked under the lock
 * /run/systemd/nspawn-uid/<base>, shared with systemd-nspawn, or read off the tree's owner), chowns the tree or
 * asks the helper for an idmapped root (plan.idmap); teardown() drops the lock. The helper writes the maps itself
 * (plan.usermap), so such a run can be handed over to the helper: the lock's descriptor then goes with the exec
 * (FD_CLOEXEC cleared, plan.inheritedLocks) and the helper holds it for the container's life and removes the file at
 * the end, as systemd's release_lock_file(). Not handed over, nspawn holds it until teardown(). Either way the lock
 * is an open file description of the process: it dies with it (kill -9 included).
 */
import { statfsSync, statSync } from 'node:fs';
import {
  filesUserDb,
  idmapSupported,
  knownIdmapFs,
  ownerBase,
  pickRange,
  resolveOwnership,
  shiftTree,
  tryLockFile,
  UidRangeError,
  type PickedRange,
  type UserDb,
} from '@nspawn/uidrange';
import type { ContainerExtension } from '@nspawn/runtime';
import { ContainerError } from '@nspawn/runtime';
import { sysAddon } from '@nspawn/runtime';
import { runRecordOf } from '@nspawn/runtime';
import { runImageOf } from './image-registry.js';

export interface PrivateUsersDeps {
  pick: typeof pickRange;
  shift: typeof shiftTree;
  /** whether the directory's file system takes an idmapped mount */
  idmapOk(dir: string, shift: number, range: number): boolean;
  users(): UserDb;
}

const nodeDeps: PrivateUsersDeps = {
  // the range's lock through the runtime's addon where it loads (no koffi on -U's start path), else uidrange's own
  pick: (opts) => {
    const sys = opts?.lock === undefined ? sysAddon() : undefined;
    return pickRange(sys ? { ...opts, lock: (path) => tryLockFile(path, sys) } : opts);
  },
  shift: shiftTree,
  idmapOk(dir, shift, range) {
    // the file systems known to support it need no probe (a probe costs a process and a user namespace)
    if (knownIdmapFs(Number(statfsSync(dir).type)) !== undefined) return true;
    return idmapSupported(dir, shift, range);
  },
  users: () => filesUserDb(),
};

/** host UIDs/GIDs inside [base, base+count) of a range given by hand (identity, base 0, is exempt) */
export function hostIdsInRange(base: number, count: number, users: UserDb, ids: Iterable<number>): number | undefined {
  if (base === 0) return undefined;
  for (const id of ids) if (id >= base && id < base + count && (users.hasUid(id) || users.hasGid(id))) return id;
  return undefined;
}

export function privateUsersExtension(deps: PrivateUsersDeps = nodeDeps): ContainerExtension {
  let picked: PickedRange | undefined;
  let idmap = false;
  const fail = (e: unknown): never => {
    if (e instanceof UidRangeError) throw new ContainerError(e.message);
    throw e;
  };
  return {
    name: 'private-users',
    // nothing after the start: in a hand-over the helper takes the range's lock over (plan.inheritedLocks)
    needed: () => false,
    setupBeforeHandoff: true,
    setup(run) {
      const u = run.cfg.userns;
      if (!u) return;
      // -i: the image's root as the storage extension opened it (read through its view); systemd 252 mounts the
      // image's root first and reads the range off it (determine_uid_shift()); an image with only /usr has an empty
      // tmpfs for its root, root's
      const image = run.cfg.image;
      const dir = image ? (image.view.root ?? image.view.usr ?? run.cfg.directory) : run.cfg.directory;
      const what = image ? image.path : dir;
      try {
        const byHand = !u.pick && !u.fromOwner;
        let owner: number | undefined;
        if (!byHand) {
          if (image && image.view.root === undefined) owner = 0;
          else {
            const st = statSync(dir);
            owner = ownerBase(st.uid, st.gid, what);
          }
        }
        const d = resolveOwnership({
          mode: u.pick ? 'pick' : 'fixed',
          ...(u.ownership ? { requested: u.ownership } : {}),
          ...(byHand ? { shift: u.shift } : {}),
          ...(owner !== undefined ? { ownerBase: owner } : {}),
          directory: what,
          readOnly: run.cfg.readOnly,
        });
        if (u.pick) {
          // noted before the lock file exists: a kill -9 from now on leaves it to a later start (src/recovery.ts)
          runRecordOf(run.cfg)?.note({ userns: true });
          picked = deps.pick({ first: d.shift, machine: run.cfg.machineName });
          u.shift = picked.base;
          u.range = picked.count;
        } else {
          u.shift = d.shift;
          if (byHand && u.shift !== 0) {
            // our refusal (systemd 252 has none): a range given by hand must not hand host users' IDs to the container
            const users = deps.users();
            const hit = hostIdsInRange(u.shift, u.range, users, users.ids());
            if (hit !== undefined)
              throw new UidRangeError(
                `UID range ${u.shift}:${u.range} (--private-users=) overlaps the host's users: ID ${hit} is in /etc/passwd or /etc/group. Refusing.`,
                'EINVAL',
              );
          }
        }
        let own = d.ownership;
        if (own === 'map' && u.shift !== 0) {
          if (deps.idmapOk(dir, u.shift, u.range)) idmap = true;
          else if (d.fallback) own = 'chown';
          else throw new UidRangeError('ID mapped mounts are apparently not available, sorry.', 'EOPNOTSUPP');
        }
        if (own === 'chown' && !image) deps.shift(dir, u.shift, u.range);
        // an image: its partitions mounted writable and chowned (recursive_chown() on the mounted image), unless they
        // carry the range already (path_patch_uid()'s check of the top directory) or are read-only (skipped by 252)
        else if (own === 'chown' && owner !== u.shift && !run.cfg.readOnly) {
          const img = runImageOf(run.cfg);
          if (!img) throw new Error('private users: the image is not open');
          const { shift, range } = u;
          img.chown((d) => deps.shift(d, shift, range));
        }
        // -i: the partitions' file systems as idmapped mounts (systemd's DISSECT_IMAGE_MOUNT_IDMAPPED), made by the
        // helper with the steps the storage extension plans
        if (image && idmap) image.idmap = true;
      } catch (e) {
        fail(e);
      }
    },
    plan(run, plan) {
      const u = run.cfg.userns;
      // (an image's mounts are idmapped one by one instead: the directory under them is an empty one)
      if (u && idmap && !run.cfg.image) plan.idmap = { shift: u.shift, range: u.range };
      // handed over: the lock goes with the exec, and the helper holds and releases it
      if (picked && run.handoff) plan.inheritedLocks = [...(plan.inheritedLocks ?? []), { fd: picked.keepAcrossExec(), path: picked.lockPath, exclusive: true }];
    },
    teardown() {
      picked?.release();
      picked = undefined;
    },
  };
}
