/**
 * Runs a prepared container: plans it, starts the native helper, answers its sync point (uid maps), forwards
 * signals by --kill-signal, and maps the container's end to systemd-nspawn's exit status
 * (wait_for_container() and run_container() in nspawn.c).
 */
import type { ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, writeSync, lstatSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { signalName } from '@nspawn/settings';
import { type HostFacts, nodeTree, probeHost } from './host.js';
import { buildEnvironment, buildRlimits, type ContainerConfig, planContainer } from './plan.js';
import { type Prepared, randomId128, treeMachineId } from './prepare.js';
import { ContainerError } from './errors.js';
import { setupJournal } from './journal.js';
import { kernelLimitError } from './limits.js';
import { baseFilesystemCreate } from './base-filesystem.js';
import { type CgroupFs, createMachineCgroup, type MachineCgroup, machineHierarchies, parseProcCgroup } from './cgroup.js';
import { deviceCgroupProgram, type DeviceFacts, formatDeviceRule, machineDeviceRules, nodeDeviceFacts } from './devices/index.js';
import { encodePlan, type HelperEvent, type HelperPlan, parseHelperLine } from './protocol.js';
import { randomHex } from './random.js';
import { helperPath } from './helper-path.js';
import type { ContainerExtension, ContainerRun } from './extension-api.js';
import { runRecordOf } from './run-record.js';
import { procStartTime } from './machines.js';

export const EXIT_FORCE_RESTART = 133;

export type StdioTriple = [StdioEntry, StdioEntry, StdioEntry];
type StdioEntry = 'inherit' | 'ignore' | number;

/** How the container ended. */
export type ContainerEnd =
  | { kind: 'exited'; code: number }
  | { kind: 'signaled'; signal: number }
  | { kind: 'failed'; message: string };

export interface RunHooks {
  /** a line for the user (stderr) */
  log(line: string): void;
  onEvent?(e: HelperEvent): void;
  /** called with the container's PID 1 (host PID) once it exists */
  onStart?(pid: number): void;
  /**
   * The container is ready, once per boot: when its payload has started, or with --notify-ready=yes when its init
   * has sent READY=1 to /run/host/notify (what systemd-nspawn reports to its own service manager as READY=1).
   */
  onReady?(): void;
  /** a message of the container's init on /run/host/notify that nspawn handles: "READY=1", "STATUS=..." */
  onNotify?(message: string): void;
  /** false: our SIGINT/SIGTERM/SIGHUP are not passed on to the container (nspawnd: its containers outlive it) */
  forwardSignals?: boolean;
  /**
   * a helper started earlier (spawnHelper()) that waits for its plan, instead of one started now: nspawnd keeps
   * one ready, so the start of a process is off the critical path (its stdio is then set by plan.stdoutPath)
   */
  spawnHelper?(): ChildProcess;
}

// fs.writeSync rather than process.stderr: no stream to build at start-up; a terminal that hung up (EIO) is not an error
export const defaultHooks: RunHooks = {
  log: (l) => {
    try {
      writeSync(2, `${l}\n`);
    } catch {
      // nowhere to say it
    }
  },
};

/**
 * Starts the helper. It waits for its plan on fd 3, so it can be started while the plan is still being made
 * (its start-up then overlaps ours); closing fd 3 without a plan makes it leave quietly.
 */
export function spawnHelper(opts: { helper?: string; stdio?: StdioTriple } = {}): ChildProcess {
  // loaded here, not at start-up: a run handed over to the helper (src/handoff.ts) never needs child_process
  const { spawn } = process.getBuiltinModule('node:child_process');
  return spawn(opts.helper ?? helperPath(), [], { argv0: 'nspawn-helper', stdio: [...(opts.stdio ?? ['inherit', 'inherit', 'inherit']), 'pipe'] });
}

/** Runs the helper once with a plan and resolves how the container ended. */
export function runPlan(
  plan: HelperPlan,
  opts: {
    /** 0: SIGINT/SIGTERM kill the container at once */
    killSignal: number;
    /**
     * called with the container's PID 1 when the plan has sync: the container waits at its sync point until
     * this settles (uid maps, network links); a rejection aborts the start with its message
     */
    attach?: (pid: number) => void | Promise<void>;
    hooks?: RunHooks;
    helper?: string;
    /** the container's stdin, stdout, stderr (default: ours) */
    stdio?: StdioTriple;
    /** a helper from spawnHelper() that has not been given a plan yet */
    child?: ChildProcess;
    /** --notify-ready=yes: hooks.onReady() waits for READY=1 from the container's init */
    notifyReady?: boolean;
  },
): Promise<ContainerEnd> {
  const hooks = opts.hooks ?? defaultHooks;
  return new Promise((resolvePromise) => {
    const child = opts.child ?? spawnHelper(opts);
    const ctl = child.stdio[3] as import('node:net').Socket;
    let pid = 0;
    let end: ContainerEnd | undefined;
    let error: string | undefined;
    let buf = '';
    let halting = false;
    // on_orderly_shutdown(): the first SIGINT/SIGTERM sends --kill-signal (if there is one), the next SIGKILL
    const onSignal = () => {
      if (pid <= 0) return;
      const first = !halting && opts.killSignal > 0;
      halting = true;
      try {
        process.kill(pid, first ? opts.killSignal : 'SIGKILL');
        if (first) hooks.log(HALT_MESSAGE);
      } catch {
        // already gone
      }
    };
    // SIGHUP (our terminal went away): systemd-nspawn dies of it and its container with it; the container is killed
    // at once here too, but nspawn stays to remove its cgroup (no service manager will)
    let hungUp = false;
    const onHangup = () => {
      halting = hungUp = true;
      if (pid > 0) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    };
    const forward = hooks.forwardSignals !== false;
    const signals: NodeJS.Signals[] = forward ? ['SIGTERM', 'SIGINT'] : [];
    for (const s of signals) process.on(s, onSignal);
    if (forward) process.on('SIGHUP', onHangup);
    let wasReady = false;
    const ready = () => {
      if (!wasReady) hooks.onReady?.();
      wasReady = true;
    };
    const handle = (e: HelperEvent) => {
      hooks.onEvent?.(e);
      switch (e.type) {
        case 'pid':
          pid = e.pid;
          if (hungUp) onHangup();
          hooks.onStart?.(pid);
          if (plan.sync) {
            Promise.resolve()
              .then(() => opts.attach?.(e.pid))
              .then(
                () => ctl.write('go\n'),
                (err: unknown) => {
                  error ??= (err as Error).message;
                  ctl.write('abort\n');
                },
              );
          }
          break;
        case 'error':
          error ??= e.message;
          break;
        case 'warning':
          hooks.log(e.message);
          break;
        case 'escape':
          if (pid > 0) {
            const sig = e.action === 'kill' ? 9 : e.action === 'poweroff' ? 38 /* SIGRTMIN+4 */ : 39; /* SIGRTMIN+5 */
            try {
              process.kill(pid, sig);
            } catch {
              // gone
            }
          }
          break;
        case 'exit':
          end = { kind: 'exited', code: e.code };
          break;
        case 'signal':
          end = { kind: 'signaled', signal: e.signal };
          break;
        case 'ready':
          if (!opts.notifyReady) ready();
          break;
        case 'notify':
          hooks.onNotify?.(e.message);
          if (opts.notifyReady && e.message === 'READY=1') ready();
          break;
      }
    };
    ctl.setEncoding('utf8');
    ctl.on('data', (d: string) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        const e = parseHelperLine(line);
        if (e) handle(e);
      }
    });
    ctl.on('error', () => {
      // the helper closed its end; its exit is handled below
    });
    ctl.write(encodePlan(plan));
    child.on('error', (err) => {
      error ??= `Failed to start ${opts.helper ?? 'nspawn-helper'}: ${err.message}`;
    });
    child.on('close', (code, sig) => {
      for (const s of signals) process.off(s, onSignal);
      process.off('SIGHUP', onHangup);
      if (error !== undefined) resolvePromise({ kind: 'failed', message: error });
      else if (end) resolvePromise(end);
      else resolvePromise({ kind: 'failed', message: `nspawn-helper ended without a status (${sig ?? `exit ${code}`})` });
    });
  });
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
      const upper = m.upper.startsWith('+') ? join(cfg.directory, m.upper.slice(1)) : m.upper;
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
  const rules = machineDeviceRules(cfg.customMounts, cfg.directory, facts);
  if (!mech.v1 && !mech.bpf && cfg.deviceCgroup === undefined)
    hooks.log('This host has neither a v1 devices controller nor a unified cgroup hierarchy: the container\'s device access is not restricted.');
  const cgroup = createMachineCgroup({
    name: cfg.machineName,
    layout: host.cgroups,
    ...(mech.v1 ? { v1DeviceRules: rules.map(formatDeviceRule) } : {}),
    ...(cfg.userns ? { owner: cfg.userns.shift } : {}),
    ...(cgroupFs ? { fs: cgroupFs } : {}),
    ...(cfg.keepMachineSlice ? { keepSlice: true } : {}),
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

/**
 * Runs a prepared container to its end, rebooting it as systemd-nspawn does, and returns the exit status
 * nspawn should exit with.
 */
export async function runContainer(
  p: Prepared,
  hooks: RunHooks = defaultHooks,
  hostFacts?: HostFacts,
  stdio?: StdioTriple,
  extensions: readonly ContainerExtension[] = [],
): Promise<number> {
  const cfg = p.config;
  const run: ContainerRun = { cfg, log: (l) => hooks.log(l) };
  // what the kernel would refuse halfway is refused before any extension makes anything
  const host = (hostFacts ??= probeHost());
  const limit = kernelLimitError(cfg, buildEnvironment(cfg, host), buildRlimits(cfg, host));
  if (limit !== undefined) throw new ContainerError(limit);
  const started: ContainerExtension[] = [];
  try {
    for (const x of extensions) {
      started.push(x);
      await x.setup?.(run);
    }
    return await bootLoop(p, hooks, run, extensions, hostFacts, stdio);
  } finally {
    for (const x of started.reverse()) {
      try {
        await x.teardown?.(run);
      } catch (e) {
        hooks.log(`${x.name}: ${(e as Error).message}`);
      }
    }
  }
}

const HALT_MESSAGE = 'Trying to halt container. Send SIGTERM again to trigger immediate termination.';

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

export const spawningMessage = (cfg: Pick<ContainerConfig, 'machineName' | 'directory'>) =>
  `Spawning container ${cfg.machineName} on ${cfg.directory}.\nPress ^] three times within 1s to kill container.`;

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
  const tree = nodeTree(cfg.directory);
  // setup_machine_id(), on every boot: the machine ID the tree has now wins (its init may have written ours)
  const treeId = treeMachineId(tree);
  if (treeId !== undefined) cfg.uuid = treeId;
  // setup_journal(): the host side now, the tree's side in the plan
  const journal = setupJournal({
    directory: cfg.directory,
    uuid: cfg.uuid,
    mode: cfg.linkJournal ?? 'auto',
    try: cfg.linkJournalTry === true,
    readOnly: cfg.readOnly,
    tree,
    ...(cfg.userns ? { uidShift: cfg.userns.shift } : {}),
  });
  for (const w of journal.warnings) hooks.log(w);
  const overlays = prepareOverlayScratch(cfg);
  try {
    const plan = planContainer({ ...cfg, overlayScratch: overlays.scratch, journalOps: journal.ops }, host, tree, {
      hex128: randomId128, // boot ids are v4 UUIDs, as setup_boot_id() makes them
    });
    plan.notify = { notifyReady: p.notifyReady, restartExits: p.keepUnit };
    for (const x of extensions) x.plan?.(run, plan);
    // base_filesystem_create(): /root, /usr, the merged-/usr symlinks ... where the tree lacks them, owned by the
    // container's root as the disk sees it (0 through an idmapped root, else the range's base)
    baseFilesystemCreate(cfg.directory, cfg.userns && !plan.idmap ? cfg.userns.shift : 0);
    return { plan, cleanup: overlays.cleanup };
  } catch (e) {
    overlays.cleanup();
    throw e;
  }
}

async function bootLoop(
  p: Prepared,
  hooks: RunHooks,
  run: ContainerRun,
  extensions: readonly ContainerExtension[],
  hostFacts: HostFacts | undefined,
  stdio: StdioTriple | undefined,
): Promise<number> {
  const cfg = p.config;
  if (!p.quiet) hooks.log(spawningMessage(cfg));
  for (;;) {
    // the helper starts first and waits for its plan: its exec overlaps the planning below
    const child = hooks.spawnHelper?.() ?? spawnHelper(stdio ? { stdio } : {});
    let end: ContainerEnd;
    let cleanup = () => {};
    let machine: MachineCgroup | undefined;
    let ran = false;
    try {
      const host = (hostFacts ??= probeHost());
      const boot = planBoot(p, run, extensions, host, hooks);
      cleanup = boot.cleanup;
      const plan = boot.plan;
      // a helper that outlives us (nspawnd's): the run lives as long as it does, whoever holds the record
      if (plan.survive && child.pid !== undefined) runRecordOf(cfg)?.note({ survivor: { pid: child.pid, startTime: procStartTime(child.pid) ?? 0 } });
      if (child.pid !== undefined) machine = setupMachineCgroup(cfg, host, plan, child.pid, hooks);
      try {
        machine?.check();
      } catch (e) {
        machine = undefined; // another nspawn's now: not ours to remove
        throw e;
      }
      ran = true;
      end = await runPlan(plan, {
        killSignal: p.killSignal,
        attach: async (pid) => {
          for (const x of extensions) await x.attach?.(run, pid);
        },
        hooks,
        child,
        notifyReady: p.notifyReady,
      });
    } catch (e) {
      (child.stdio[3] as import('node:net').Socket).end();
      if (machine && !ran) machine.abandon();
      machine = undefined;
      throw e;
    } finally {
      cleanup();
      if (machine && ran) {
        const left = await machine.remove();
        // the scope stays: so does the run's record, for a later start or 'nspawnctl clean'
        if (left.length > 0) runRecordOf(cfg)?.markLeft();
        for (const w of left) hooks.log(w);
      }
      for (const x of [...extensions].reverse()) {
        try {
          await x.detach?.(run);
        } catch (e) {
          hooks.log(`${x.name}: ${(e as Error).message}`);
        }
      }
    }
    const say = (l: string) => {
      if (!p.quiet) hooks.log(l);
    };
    const msg = endMessages(cfg.machineName);
    switch (end.kind) {
      case 'failed':
        hooks.log(end.message);
        return 1;
      case 'exited':
        if (end.code === 0) say(msg.ok);
        else say(msg.fail.replace('{}', String(end.code)));
        return end.code === EXIT_FORCE_RESTART ? 1 : end.code;
      case 'signaled':
        if (end.signal === 2) {
          say(msg.shutdown);
          return 0;
        }
        if (end.signal === 1) {
          say(msg.reboot);
          if (p.keepUnit) return EXIT_FORCE_RESTART;
          continue;
        }
        hooks.log(msg.signal.replace('{}', signalName(end.signal)));
        return 1;
    }
  }
}
