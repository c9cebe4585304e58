/**
 * The container's root directory as systemd-nspawn 252 takes hold of it (run() in nspawn.c), through
 * @nspawn/btrfs:
 * - `-x`/`--ephemeral`: a snapshot beside the tree (`.#machine.NAME<16 hex>`), locked while the container runs and
 *   removed after it on every path; orphans of killed runs are removed first. Off btrfs an overlayfs instead of
 *   systemd's copy ($NSPAWN_EPHEMERAL=copy brings the copy back). It is made before a hand-over too: its locks go
 *   with the exec to the helper, which removes it at the end (plan.removeSubvolumes for a subvolume: a snapshot, a
 *   copy on btrfs; else plan.removeMounts and plan.removeTrees).
 * - otherwise the image lock (`.#NAME.lck` beside it and `/run/systemd/nspawn/locks/inode-DEV:INO`), shared with
 *   --read-only, held for the whole run: a second start of the image, by nspawn or systemd-nspawn, fails. A plain
 *   run hands the lock files to the helper (plan.locks): it holds them for the container's life, also after a
 *   hand-over, and this extension is then not needed after the start;
 * - `--template`: a missing directory is populated from the template (snapshot or copy) under that lock, taken here
 *   (Node holds it for the run).
 * - `-i/--image`: the disk image opened for the run (src/image.ts: lock, loop devices, the mounts as data for the
 *   helper), with --read-only, -x (overlay over the read-only partitions, or $NSPAWN_EPHEMERAL=copy: systemd's copy)
 *   and --image-policy=. Supervised, Node holds the image open and closes it at teardown; handed over, the helper
 *   holds the loop devices (plan.heldFds) and the locks (plan.inheritedLocks) until it exits.
 * What it makes is noted in the run's record first (src/recovery.ts), so that a later start collects it after a kill -9.
 */
import { mkdirSync } from 'node:fs';
import {
  createEphemeral,
  ephemeralModeFromEnv,
  type EphemeralRoot,
  GLOBAL_LOCK_DIR,
  globalLockPath,
  ImageBusyError,
  type ImageLock,
  isSubvolume,
  localLockPath,
  lockImage,
  lockingDisabled,
  populateFromTemplate,
  removeTree,
} from '@nspawn/btrfs';
import { dirname } from 'node:path';
import type { ContainerExtension, ContainerRun } from '@nspawn/runtime';
import type { ContainerConfig } from '@nspawn/runtime';
import type { HelperPlan } from '@nspawn/runtime';
import { nodeTree } from '@nspawn/runtime';
import { ContainerError } from '@nspawn/runtime';
import { verifyOsTree } from '@nspawn/runtime';
import { runRecordOf } from '@nspawn/runtime';
import type { RunImage } from './image.js';

export interface StorageExtensionOptions {
  /** the environment ($NSPAWN_EPHEMERAL, $SYSTEMD_NSPAWN_LOCK); default process.env */
  env?: NodeJS.ProcessEnv;
}

/**
 * Runs F (synchronous: a copy may take seconds) with SIGINT and SIGTERM held back, as systemd-nspawn blocks SIGINT
 * around its snapshot: says which arrived meanwhile, so that the caller removes what F made instead of dying halfway
 * through and leaving a partial tree.
 */
async function holdingSignals<T>(f: () => T): Promise<{ value: T; signal?: string }> {
  let signal: string | undefined;
  const on = (s: NodeJS.Signals) => {
    signal ??= s;
  };
  process.on('SIGINT', on);
  process.on('SIGTERM', on);
  try {
    const value = f();
    await new Promise((r) => setImmediate(r)); // a signal that came during f() is dispatched now
    return signal === undefined ? { value } : { value, signal };
  } finally {
    process.off('SIGINT', on);
    process.off('SIGTERM', on);
  }
}

/** One per run: it holds the snapshot and the locks between setup and teardown. */
export function storageExtension(opts: StorageExtensionOptions = {}): ContainerExtension {
  const env = opts.env ?? process.env;
  // $NSPAWN_EPHEMERAL, read when -x asks for it; a bad value is the user's error, said in one line
  const ephemeralMode = () => {
    try {
      return ephemeralModeFromEnv(env);
    } catch (e) {
      throw new ContainerError((e as Error).message);
    }
  };
  let ephemeral: EphemeralRoot | undefined;
  let lock: ImageLock | undefined;
  let image: RunImage | undefined;
  // only -x and --template have work of their own; a plain run's locks are the helper's
  const ownsRun = (cfg: ContainerConfig) => cfg.ephemeral === true || cfg.template !== undefined;
  // -x making a snapshot (btrfs), an overlay (elsewhere) or a copy: the helper can remove it at the end in nspawn's
  // place (hand-over), holding its locks until then
  const handedOverEphemeral = (cfg: ContainerConfig) => {
    if (cfg.ephemeral !== true || cfg.template !== undefined) return false;
    const mode = ephemeralMode();
    return mode !== 'snapshot' || isSubvolume(cfg.directory);
  };
  return {
    name: 'storage',
    // an image is opened before a hand-over too: its loop devices and locks then go to the helper with the exec
    needed: (cfg) => cfg.image === undefined && ownsRun(cfg) && !handedOverEphemeral(cfg),
    // a snapshot for a hand-over is made before the exec (and its removal left to the helper)
    setupBeforeHandoff: true,
    plan(run: ContainerRun, plan: HelperPlan) {
      const cfg = run.cfg;
      if (cfg.image) {
        // the steps for this boot, with -U's range (set up by the private-users extension after us)
        if (image) plan.imageSteps = cfg.image.steps = image.steps(cfg.userns ? { shift: cfg.userns.shift, idmap: cfg.image.idmap === true } : undefined);
        // the plan is made: a view that is not shared goes before the container mounts the image (src/image.ts)
        image?.closeView();
        // supervised, Node holds the image open until teardown; handed over, the helper holds its loop devices,
        // locks and the view's mounts (whose superblocks the container's mounts share)
        if (run.handoff && image) {
          const kept = image.opened.keepAcrossExec();
          plan.inheritedLocks = [...(plan.inheritedLocks ?? []), ...kept.locks];
          plan.heldFds = [...(plan.heldFds ?? []), ...kept.devices, ...image.keepViewAcrossExec()];
        }
        return;
      }
      if (run.handoff && ephemeral) {
        // the helper holds the locks and removes it at the end: a subvolume by ioctl, else the mounts and the tree
        const r = ephemeral.removal();
        plan.inheritedLocks = [...(plan.inheritedLocks ?? []), ...ephemeral.keepLocksAcrossExec()];
        if (r.subvolume) plan.removeSubvolumes = [...(plan.removeSubvolumes ?? []), r.tree];
        else {
          plan.removeMounts = [...(plan.removeMounts ?? []), ...r.mounts];
          plan.removeTrees = [...(plan.removeTrees ?? []), r.tree];
        }
        return;
      }
      if (ownsRun(cfg) || lockingDisabled(env) || cfg.directory === '/') return;
      const busy = `Directory tree ${cfg.directory} is currently busy.`;
      const exclusive = !cfg.readOnly;
      const locks = [{ path: localLockPath(cfg.directory), exclusive, busy }];
      const global = globalLockPath(cfg.directory);
      if (global !== undefined) {
        mkdirSync(GLOBAL_LOCK_DIR, { recursive: true, mode: 0o700 });
        locks.push({ path: global, exclusive, busy });
      }
      plan.locks = [...(plan.locks ?? []), ...locks];
    },
    setup(run: ContainerRun): void | Promise<void> {
      const cfg = run.cfg;
      if (cfg.image) return setupImage(run);
      if (!ownsRun(cfg)) return;
      // a hand-over (of -x: needed() said so) makes a snapshot or an overlay synchronously, an ioctl or a mount are
      // quick (a signal meanwhile leaves an orphan, which the next start removes: its lock is free); a copy holds
      // SIGINT/SIGTERM back as without a hand-over
      if (run.handoff && ephemeralMode() !== 'copy') useEphemeral(cfg, { value: makeEphemeral(cfg) });
      else return setupSupervised(run);
    },
    // the next boot's plan reads the image again
    detach(run: ContainerRun) {
      try {
        image?.reopenView();
      } catch (e) {
        run.log(`Failed to read ${run.cfg.image?.path} again for the next boot, ignoring: ${(e as Error).message}`);
      }
    },
    // (after a hand-over nothing runs here: the helper removes the snapshot or the overlay; teardown() of a hand-over
    // that failed before its exec removes it as usual)
    teardown(run: ContainerRun) {
      try {
        if (ephemeral) {
          const e = ephemeral;
          ephemeral = undefined;
          try {
            e.remove();
          } catch (err) {
            // the run's record stays (src/recovery.ts): a later start or 'nspawnctl clean' removes it
            runRecordOf(run.cfg)?.markLeft();
            run.log(`Cannot remove '${e.snapshot}', ignoring: ${(err as Error).message}`);
          }
        }
      } finally {
        lock?.release();
        lock = undefined;
        const img = image;
        image = undefined;
        if (img) return img.close();
      }
    },
  };

  async function setupImage(run: ContainerRun): Promise<void> {
    // -x with --private-users-ownership=chown: on a copy, as systemd 252 does (it chowns its copy); chowning through
    // the overlay would copy every file up into memory
    const copy = ephemeralMode() === 'copy' || run.cfg.userns?.ownership === 'chown';
    const ephemeral = run.cfg.ephemeral === true && copy ? 'copy' : 'overlay';
    // (src/image.ts is loaded by an -i start only: nspawn's bundle keeps it in a file of its own)
    const { openRunImage } = await import('./image.js');
    image = await openRunImage(run, { env, ephemeral });
  }

  function makeEphemeral(cfg: ContainerConfig): EphemeralRoot {
    try {
      // the snapshot's path goes into the run's record before it is made (src/recovery.ts: kill -9 at any moment)
      const record = runRecordOf(cfg);
      return createEphemeral(cfg.directory, { readOnly: cfg.readOnly, env, ...(record ? { reserve: (snapshot: string) => record.note({ snapshot }) } : {}) });
    } catch (e) {
      throw new ContainerError(`Failed to create snapshot of ${cfg.directory}: ${(e as Error).message}`);
    }
  }

  /** the run goes on the ephemeral root MADE (teardown removes it, also when a signal interrupted its making) */
  function useEphemeral(cfg: ContainerConfig, made: { value: EphemeralRoot; signal?: string }): void {
    ephemeral = made.value;
    if (made.signal) throw new ContainerError(`Interrupted while copying file system tree to ${made.value.snapshot}, removed again.`);
    cfg.directory = ephemeral.root;
  }

  async function setupSupervised(run: ContainerRun): Promise<void> {
    const cfg = run.cfg;
    if (cfg.ephemeral) return useEphemeral(cfg, await holdingSignals(() => makeEphemeral(cfg)));
    try {
      lock = lockImage(cfg.directory, { shared: cfg.readOnly, env });
    } catch (e) {
      if (e instanceof ImageBusyError) throw new ContainerError(`Directory tree ${cfg.directory} is currently busy.`);
      throw new ContainerError(`Failed to lock ${cfg.directory}: ${(e as Error).message}`);
    }
    if (cfg.template === undefined) return;
    const template = cfg.template;
    let r;
    try {
      const made = await holdingSignals(() => populateFromTemplate(template, cfg.directory, { readOnly: cfg.readOnly }));
      r = made.value;
      if (made.signal && r !== 'exists') {
        removeTree(cfg.directory, { within: dirname(cfg.directory) });
        throw new ContainerError(`Interrupted while copying file system tree to ${cfg.directory}, removed again.`);
      }
    } catch (e) {
      if (e instanceof ContainerError) throw e;
      throw new ContainerError(`Couldn't create snapshot ${cfg.directory} from ${template}: ${(e as Error).message}`);
    }
    if (cfg.quiet !== true) {
      if (r === 'exists') run.log(`Directory ${cfg.directory} already exists, not populating from template ${template}.`);
      else run.log(`Populated ${cfg.directory} from template ${template}.`);
    }
    verifyOsTree(nodeTree(cfg.directory), cfg.directory, cfg.startMode);
  }
}
