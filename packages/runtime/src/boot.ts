/**
 * One boot's host side, the same whether the container is then supervised in this process (run.ts) or handed over to
 * the helper (handoff.ts): the host scaffolding, overlay scratch directories, the machine ID and journal link, the
 * plan with what the extensions add, the machine's cgroup with its device policy, and what nspawn says at the start
 * and the end.
 */
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { type HostFacts, nodeTree } from './host.js';
import { imageRootTree } from './image-tree.js';
import { type ContainerConfig, planContainer } from './plan.js';
import { type Prepared, randomId128, treeMachineId } from './prepare.js';
import { ContainerError } from './errors.js';
import { setupJournal } from './journal.js';
import { baseFilesystemCreate } from './base-filesystem.js';
import { volatileTree } from './volatile.js';
import { rootDirectory } from './root-dir.js';
import { type CgroupFs, createMachineCgroup, type MachineCgroup, machineHierarchies, parseProcCgroup } from './cgroup.js';
import { ociDeviceRules } from './oci-bundle.js';
import { deviceCgroupProgram, type DeviceFacts, formatDeviceRule, machineDeviceRules, nodeDeviceFacts } from './devices/index.js';
import type { HelperPlan } from './protocol.js';
import { randomHex } from './random.js';
import type { ContainerExtension, ContainerRun } from './extension-api.js';
import type { RunHooks } from './hooks.js';
import { runRecordOf } from './run-record.js';
import { hostUserDb, resolveBindUsers } from './bind-user.js';
import type { CustomMount } from '@nspawn/settings';

/** a host file's text, or undefined when it cannot be read (a missing /etc/shadow is no user database) */
function readHostFile(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Host-side preparation that must exist before the helper runs (idempotent). */
export function ensureHostScaffolding(host: HostFacts): void {
  if (!existsSync(host.inaccessibleFile)) {
    mkdirSync(dirname(host.inaccessibleFile), { recursive: true, mode: 0o755 });
    writeFileSync(host.inaccessibleFile, '', { mode: 0 });
    chmodSync(host.inaccessibleFile, 0);
  }
  const dir = join(dirname(host.inaccessibleFile), 'dir');
  if (!existsSync(dir)) mkdirSync(dir, { mode: 0 });
}

/** Throw-away directories for overlays: made before the start, removed after the end. */
function prepareOverlayScratch(cfg: ContainerConfig): { scratch: NonNullable<ContainerConfig['overlayScratch']>; cleanup: () => void } {
  const scratch: NonNullable<ContainerConfig['overlayScratch']> = {};
  const remove: string[] = [];
  cfg.customMounts.forEach((m, i) => {
    if (m.type !== 'overlay' || m.readOnly) return;
    if (m.upper === '') {
      const tmp = mkdtempSync('/var/tmp/nspawn-temp-');
      remove.push(tmp);
      mkdirSync(join(tmp, 'src'), { mode: 0o755 });
      mkdirSync(join(tmp, 'work'), { mode: 0o700 });
      scratch[i] = { upper: join(tmp, 'src'), work: join(tmp, 'work') };
    } else {
      const upper = m.upper.startsWith('+') ? join(rootDirectory(cfg), m.upper.slice(1)) : m.upper;
      const work = join(dirname(upper), `.#${basename(upper)}${randomHex(8)}`);
      mkdirSync(work, { mode: 0o700 });
      remove.push(work);
      scratch[i] = { upper, work };
    }
  });
  // the run's record names them (src/recovery.ts): a kill -9 leaves them to the next start
  if (remove.length > 0) runRecordOf(cfg)?.note({ scratch: remove });
  const cleanup = () => {
    for (const d of remove) {
      try {
        // only what we made: a directory that is not a symlink
        if (lstatSync(d).isDirectory()) rmSync(d, { recursive: true, force: true });
      } catch {
        // already gone
      }
    }
  };
  return { scratch, cleanup };
}

/**
 * Which device controllers carry the device policy: the v1 devices controller (devices.deny/devices.allow) and a
 * BPF program on the unified hierarchy. By default every one the host has (both on a hybrid host: the v1 rules
 * alone can be lifted by root in the container, which may write devices.allow of its own cgroup, while the BPF
 * program can only be detached with bpf(), which the seccomp filter refuses); cfg.deviceCgroup picks.
 */
export function deviceMechanisms(cfg: Pick<ContainerConfig, 'deviceCgroup'>, host: HostFacts): { v1: boolean; bpf: boolean } {
  const hs = machineHierarchies(host.cgroups);
  const have = { v1: hs.some((h) => !h.unified && h.key.split(',').includes('devices')), bpf: hs.some((h) => h.unified) };
  if (cfg.deviceCgroup === undefined) return have;
  const want = { v1: cfg.deviceCgroup.includes('v1'), bpf: cfg.deviceCgroup.includes('bpf') };
  if (want.v1 && !have.v1) throw new ContainerError('$NSPAWN_DEVICE_POLICY asks for the v1 devices controller, which this host does not have mounted.');
  if (want.bpf && !have.bpf) throw new ContainerError('$NSPAWN_DEVICE_POLICY asks for a BPF device program, but this host has no unified cgroup hierarchy.');
  return want;
}

/**
 * The container's cgroup (src/cgroup.ts) with its device policy (src/devices/), made before the helper gets its
 * plan: the scope in each hierarchy machineHierarchies() names, with the v1 rules; the plan gets where the helper puts the container's PID 1
 * (and where the helper, HELPERPID, stays) and the BPF program for the helper to attach.
 */
export function setupMachineCgroup(
  cfg: ContainerConfig,
  host: HostFacts,
  plan: HelperPlan,
  helperPid: number,
  hooks: Pick<RunHooks, 'log'>,
  facts: DeviceFacts = nodeDeviceFacts,
  cgroupFs?: CgroupFs,
): MachineCgroup {
  const mech = deviceMechanisms(cfg, host);
  const rules = [...machineDeviceRules(cfg.customMounts, rootDirectory(cfg), facts), ...ociDeviceRules(cfg.oci)];
  if (!mech.v1 && !mech.bpf && cfg.deviceCgroup === undefined)
    hooks.log('This host has neither a v1 devices controller nor a unified cgroup hierarchy: the container\'s device access is not restricted.');
  const cgroup = createMachineCgroup({
    name: cfg.machineName,
    layout: host.cgroups,
    ...(mech.v1 ? { v1DeviceRules: rules.map(formatDeviceRule) } : {}),
    ...(cfg.userns ? { owner: cfg.userns.shift } : {}),
    ...(cgroupFs ? { fs: cgroupFs } : {}),
    ...(cfg.keepMachineSlice ? { keepSlice: true } : {}),
    ...(cfg.slice ? { slice: cfg.slice } : {}),
    ...(cfg.cgroupAttributes?.length ? { attributes: cfg.cgroupAttributes, warn: hooks.log } : {}),
    // the run record (src/recovery.ts) is the name's lock: an empty scope of that name is then a gone run's
    ...(runRecordOf(cfg) ? { nameLocked: true } : {}),
  });
  try {
    plan.cgroup = cgroup.placement(parseProcCgroup(readFileSync(`/proc/${helperPid}/cgroup`, 'utf8')));
  } catch (e) {
    cgroup.abandon();
    throw new ContainerError(`Failed to read the cgroups of PID ${helperPid}: ${(e as Error).message}`);
  }
  if (mech.bpf && cgroup.unifiedDir !== undefined)
    plan.deviceProgram = { cgroup: cgroup.unifiedDir, program: deviceCgroupProgram(rules), ...(cgroup.v1Devices ? { optional: true } : {}) };
  return cgroup;
}

export const HALT_MESSAGE = 'Trying to halt container. Send SIGTERM again to trigger immediate termination.';

/** What nspawn says at the end of a container, as systemd-nspawn says it ("{}": the exit code or the signal). */
export function endMessages(machineName: string): { ok: string; fail: string; shutdown: string; reboot: string; signal: string; halt: string } {
  return {
    ok: `Container ${machineName} exited successfully.`,
    fail: `Container ${machineName} failed with error code {}.`,
    shutdown: `Container ${machineName} has been shut down.`,
    reboot: `Container ${machineName} is being rebooted.`,
    signal: `Container ${machineName} terminated by signal {}.`,
    halt: HALT_MESSAGE,
  };
}

export const spawningMessage = (cfg: Pick<ContainerConfig, 'machineName' | 'directory' | 'image'>) =>
  `Spawning container ${cfg.machineName} on ${cfg.image?.path ?? cfg.directory}.\nPress ^] three times within 1s to kill container.`;

/**
 * One boot's host side and plan: the machine ID, the journal link, overlay scratch directories, the plan with
 * what the extensions add. CLEANUP removes the scratch directories after the boot.
 */
export function planBoot(
  p: Prepared,
  run: ContainerRun,
  extensions: readonly ContainerExtension[],
  host: HostFacts,
  hooks: Pick<RunHooks, 'log'>,
): { plan: HelperPlan; cleanup: () => void } {
  const cfg = p.config;
  ensureHostScaffolding(host);
  // what the container's root holds: with --volatile=yes|state part of the tree is covered (src/volatile.ts)
  // an image's tree exists only in the container's namespace: read through the view the assembly made
  const tree = volatileTree(cfg.image ? imageRootTree(cfg.image.view, cfg.pivotRoot) : nodeTree(rootDirectory(cfg)), cfg.volatile);
  // setup_machine_id(), on every boot: the machine ID the tree has now wins (its init may have written ours)
  const treeId = treeMachineId(tree);
  if (treeId !== undefined) cfg.uuid = treeId;
  // setup_journal(): the host side now, the tree's side in the plan; a volatile root is not the tree: its directories
  // are made in the container (where /var is writable in every volatile mode)
  const journal = setupJournal({
    directory: rootDirectory(cfg),
    uuid: cfg.uuid,
    mode: cfg.linkJournal ?? 'auto',
    try: cfg.linkJournalTry === true,
    readOnly: cfg.readOnly && !cfg.volatile,
    tree,
    ...(cfg.userns ? { uidShift: cfg.userns.shift } : {}),
    ...(cfg.volatile || cfg.image ? { inContainer: true } : {}),
  });
  for (const w of journal.warnings) hooks.log(w);
  // bind_user_prepare(): now that the range is settled; the homes are bound after the other custom mounts
  const bindUsers = cfg.bindUser?.length && cfg.userns ? resolveBindUsers(cfg.bindUser, hostUserDb(readHostFile), tree, cfg.userns.shift, cfg.userns.range) : [];
  const overlays = prepareOverlayScratch(cfg);
  try {
    const customMounts = [...cfg.customMounts, ...bindUsers.map((u): CustomMount => ({ type: 'bind', source: u.home, destination: `/run/host/home/${u.name}`, readOnly: false, recursive: false }))];
    const plan = planContainer({ ...cfg, customMounts, bindUsers, overlayScratch: overlays.scratch, journalOps: journal.ops }, host, tree, {
      hex128: randomId128, // boot ids are v4 UUIDs, as setup_boot_id() makes them
    });
    plan.notify = { notifyReady: p.notifyReady, restartExits: p.keepUnit };
    for (const x of extensions) x.plan?.(run, plan);
    // base_filesystem_create(): /root, /usr, the merged-/usr symlinks ... where the tree lacks them, owned by the
    // container's root as the disk sees it (0 through an idmapped root, else the range's base)
    // (a volatile root gets them from the plan, in the container: src/volatile.ts)
    if (!cfg.volatile && !cfg.image) baseFilesystemCreate(rootDirectory(cfg), cfg.userns && !plan.idmap ? cfg.userns.shift : 0);
    return { plan, cleanup: overlays.cleanup };
  } catch (e) {
    overlays.cleanup();
    throw e;
  }
}
