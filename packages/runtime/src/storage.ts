/**
 * The container's root directory as systemd-nspawn 252 takes hold of it (run() in nspawn.c), through
 * @nspawn/btrfs:
 * - `-x`/`--ephemeral`: a snapshot beside the tree (`.#machine.NAME<16 hex>`), locked while the container runs and
 *   removed after it on every path; orphans of killed runs are removed first. Off btrfs an overlayfs instead of
 *   systemd's copy ($NSPAWN_EPHEMERAL=copy brings the copy back).
 * - otherwise the image lock (`.#NAME.lck` beside it and `/run/systemd/nspawn/locks/inode-DEV:INO`), shared with
 *   --read-only, held for the whole run: a second start of the image, by nspawn or systemd-nspawn, fails;
 * - `--template`: a missing directory is populated from the template (snapshot or copy) under that lock.
 */
import { createEphemeral, type EphemeralRoot, ImageBusyError, type ImageLock, lockImage, populateFromTemplate } from '@nspawn/btrfs';
import type { ContainerExtension, ContainerRun } from './extension.js';
import { nodeTree } from './host.js';
import { ContainerError } from './prepare.js';

export interface StorageExtensionOptions {
  /** the environment ($NSPAWN_EPHEMERAL, $SYSTEMD_NSPAWN_LOCK); default process.env */
  env?: NodeJS.ProcessEnv;
}

/** One per run: it holds the snapshot and the locks between setup and teardown. */
export function storageExtension(opts: StorageExtensionOptions = {}): ContainerExtension {
  const env = opts.env ?? process.env;
  let ephemeral: EphemeralRoot | undefined;
  let lock: ImageLock | undefined;
  return {
    name: 'storage',
    setup(run: ContainerRun) {
      const cfg = run.cfg;
      const quiet = cfg.quiet === true;
      if (cfg.ephemeral) {
        try {
          ephemeral = createEphemeral(cfg.directory, { readOnly: cfg.readOnly, env });
        } catch (e) {
          throw new ContainerError(`Failed to create snapshot of ${cfg.directory}: ${(e as Error).message}`);
        }
        cfg.directory = ephemeral.root;
        return;
      }
      try {
        lock = lockImage(cfg.directory, { shared: cfg.readOnly, env });
      } catch (e) {
        if (e instanceof ImageBusyError) throw new ContainerError(`Directory tree ${cfg.directory} is currently busy.`);
        throw new ContainerError(`Failed to lock ${cfg.directory}: ${(e as Error).message}`);
      }
      if (cfg.template !== undefined) {
        let r;
        try {
          r = populateFromTemplate(cfg.template, cfg.directory, { readOnly: cfg.readOnly });
        } catch (e) {
          throw new ContainerError(`Couldn't create snapshot ${cfg.directory} from ${cfg.template}: ${(e as Error).message}`);
        }
        if (!quiet) {
          if (r === 'exists') run.log(`Directory ${cfg.directory} already exists, not populating from template ${cfg.template}.`);
          else run.log(`Populated ${cfg.directory} from template ${cfg.template}.`);
        }
        const tree = nodeTree(cfg.directory);
        if (cfg.startMode === 'boot') {
          if (tree.resolve('/etc/os-release') === undefined && tree.resolve('/usr/lib/os-release') === undefined)
            throw new ContainerError(`Directory ${cfg.directory} doesn't look like an OS root directory (os-release file is missing). Refusing.`);
        } else if (!tree.isDirectory('/usr'))
          throw new ContainerError(`Directory ${cfg.directory} doesn't look like it has an OS tree (/usr/ directory is missing). Refusing.`);
      }
    },
    teardown(run: ContainerRun) {
      try {
        if (ephemeral) {
          const e = ephemeral;
          ephemeral = undefined;
          try {
            e.remove();
          } catch (err) {
            run.log(`Cannot remove '${e.snapshot}', ignoring: ${(err as Error).message}`);
          }
        }
      } finally {
        lock?.release();
        lock = undefined;
      }
    },
  };
}
