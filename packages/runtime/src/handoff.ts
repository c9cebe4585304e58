/**
 * Hand-over: nspawn becomes the helper.
 *
 * A run that needs nothing from Node once its container has started (no extension with work until the end, no
 * boot loop to plan again, no scratch directories to remove) does not start the helper as a child and wait for it:
 * nspawn makes the plan and the cgroup as always, then replaces its own process with the helper (execve), the plan
 * in a sealed memfd the helper inherits (its only argument is the descriptor's number). That saves the fork of Node, loading child_process and its streams, the control socket,
 * and Node's own tear-down at the end, about a quarter of a short run. What Node would do after the start goes into
 * the plan as data (HandoffPlan: the scope to remove, the end messages, the exit status mapping is run.ts's), and the
 * helper (native/handoff.c) does it. $NSPAWN_HANDOFF=0 turns it off.
 */
import { closeSync } from 'node:fs';
import { signalName } from '@nspawn/settings';
import { type HostFacts, probeHost } from './host.js';
import type { Prepared } from './prepare.js';
import { ContainerError } from './errors.js';
import type { ContainerExtension, ContainerRun } from './extension-api.js';
import { helperPath } from './helper-path.js';
import { endMessages, planBoot, setupMachineCgroup } from './boot.js';
import { defaultHooks, type RunHooks } from './hooks.js';
import { runLifecycle, type Waiter } from './lifecycle.js';
import { encodePlan } from './protocol.js';
import { sysAddon } from './sys-addon.js';
import { nodeCgroupFs, recordingCgroupFs } from './cgroup.js';

/** What a hand-over needs of the process it replaces. */
export interface HandoffProcess {
  /** execve(2) of this process (the sys addon's) */
  execve?: (file: string, args: string[], env: NodeJS.ProcessEnv) => never;
  /** a descriptor the exec passes on (not close-on-exec) holding DATA from its start: the plan goes in it */
  planFd?: (data: Uint8Array) => number;
  pid: number;
  /** how this nspawn was started: node's path, its options, the script, the arguments (for a reboot) */
  execPath: string;
  execArgv: string[];
  argv: string[];
  env: NodeJS.ProcessEnv;
}

type Execve = NonNullable<HandoffProcess['execve']>;

/**
 * SIGHUP, SIGINT, SIGTERM (their numbers on every architecture Linux and Node share): what the handed-over helper
 * handles. Blocked across the exec, one sent at that moment waits for the helper instead of killing it by its
 * default action before it is ready, which would leave -x's snapshot or overlay behind.
 */
const HANDOFF_SIGNALS = [1, 2, 15];

/**
 * This process: the runtime's addon (sys-addon.ts) makes the exec, with the signals the helper reads blocked from
 * before it on, and the plan's memfd (without the addon nothing is handed over: Node has no memfd, and no way to pass
 * a descriptor through process.execve()). The addon is looked for only when handoffBlocker() asks, after the cheaper
 * reasons not to hand over.
 */
export const nodeHandoffProcess = (): HandoffProcess => ({
  get execve() {
    const addon = sysAddon();
    return addon ? (((file, args, env) => addon.execve(file, args, env, HANDOFF_SIGNALS)) as Execve) : undefined;
  },
  get planFd() {
    const addon = sysAddon();
    return addon ? (data: Uint8Array) => addon.memfd('nspawn-plan', data) : undefined;
  },
  pid: process.pid,
  execPath: process.execPath,
  execArgv: process.execArgv,
  argv: process.argv,
  env: process.env,
});

/** Why a run cannot be handed over to the helper, or undefined when it can. */
export function handoffBlocker(p: Prepared, extensions: readonly ContainerExtension[], proc: Pick<HandoffProcess, 'execve' | 'planFd' | 'env'>): string | undefined {
  const cfg = p.config;
  if (proc.env.NSPAWN_HANDOFF === '0') return 'turned off by $NSPAWN_HANDOFF=0';
  if (cfg.startMode === 'boot') return 'a booted container is planned anew for each boot';
  for (const x of extensions) if (x.providesCgroup?.(cfg)) return `${x.name} gives the container its cgroup at the sync point`;
  for (const x of extensions) if (x.needed?.(cfg) ?? true) return `${x.name} has work to do after the start`;
  if (cfg.customMounts.some((m) => m.type === 'overlay' && !m.readOnly)) return 'overlay work directories are removed after the end';
  // (a --property= write that fails is a warning, as systemd's: the helper's cgroup ops would make it fatal)
  if (cfg.cgroupAttributes?.length) return '--property= settings are applied with warnings for what the host refuses';
  // (last: the addon is loaded only for a run that can be handed over)
  if (!proc.execve || !proc.planFd) return 'no execve() with the plan in a memfd here (the sys addon nspawn-sys.node did not load)';
  return undefined;
}

/**
 * Runs the container with the helper in this process's place, when handoffBlocker() allows it; then it does not
 * return (the helper exits with the container's status). Returns false, having done nothing, when the run cannot be
 * handed over: runContainer() then runs it. A promise when an extension's setup() before the hand-over is
 * asynchronous (-x's copy, which holds SIGINT/SIGTERM back): the exec then follows it.
 */
export function handoffContainer(
  p: Prepared,
  opts: { extensions?: readonly ContainerExtension[]; hooks?: Pick<RunHooks, 'log'>; host?: HostFacts; proc?: HandoffProcess; helper?: string } = {},
): false | Promise<false> {
  const extensions = opts.extensions ?? [];
  const proc = opts.proc ?? nodeHandoffProcess();
  if (handoffBlocker(p, extensions, proc) !== undefined || !proc.execve || !proc.planFd) return false;
  const helper = opts.helper ?? helperPath();
  const hooks: RunHooks = { log: (l) => (opts.hooks ?? defaultHooks).log(l) };
  const r = runLifecycle(p, extensions, hooks, opts.host ?? probeHost(), handedOver(proc, helper));
  return r instanceof Promise ? r.then(() => false) : false;
}

/** The hand-over's waiter: one boot, the helper in this process's place; returns only by throwing (the exec failed). */
const handedOver = (proc: HandoffProcess, helper: string): Waiter => ({
  handoff: true,
  boots: (p, run, extensions, host, hooks) => handOver(p, run, extensions, hooks, host, proc, helper),
});

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // not ours any more
  }
}

function handOver(
  p: Prepared,
  run: ContainerRun,
  extensions: readonly ContainerExtension[],
  hooks: Pick<RunHooks, 'log'>,
  host: HostFacts,
  proc: HandoffProcess,
  helper: string,
): never {
  const cfg = p.config;
  const { plan } = planBoot(p, run, extensions, host, hooks);
  // the helper will be this process: it goes into the scope from where this process is. It makes the scope too,
  // as createMachineCgroup() says (recordingCgroupFs(): system calls are all it costs there), and its exclusive
  // mkdir of the scope is the check that no other nspawn has it.
  const cgroupFs = recordingCgroupFs(nodeCgroupFs, cfg.machineName);
  const machine = setupMachineCgroup(cfg, host, plan, proc.pid, hooks, undefined, cgroupFs);
  plan.cgroupOps = cgroupFs.ops;
  let planFd = -1;
  try {
    plan.handoff = {
      ...machine.removal(),
      messages: endMessages(cfg.machineName),
      signalNames: Array.from({ length: 64 }, (_, i) => signalName(i + 1)),
      quiet: p.quiet,
      killSignal: p.killSignal,
      keepUnit: p.keepUnit,
      // a reboot: nspawn again, as it was started, with the same UUID (systemd-nspawn keeps it across reboots)
      reexec: [proc.execPath, ...proc.execArgv, ...proc.argv.slice(1, 2), `--uuid=${cfg.uuid}`, ...proc.argv.slice(2)],
    };
    const fd = proc.planFd!(encodePlan(plan));
    planFd = fd;
    // a code cache is written at exit, and this process will not exit: now then (the hook of nspawn's bin, which
    // caches the bundle's compiled code; Node's own compile cache for anyone else's)
    const save = (globalThis as Record<symbol, unknown>)[Symbol.for('nspawn.saveCodeCache')];
    if (typeof save === 'function') save();
    else process.getBuiltinModule('node:module').flushCompileCache?.();
    proc.execve!(helper, ['nspawn-helper', '--handoff', String(fd)], proc.env);
  } catch (e) {
    if (planFd >= 0) closeQuietly(planFd);
    machine.abandon();
    throw e instanceof ContainerError ? e : new ContainerError(`Failed to hand over to ${helper}: ${(e as Error).message}`);
  }
  throw new ContainerError(`Failed to hand over to ${helper}: execve() returned`); // not reached: execve() replaced this process
}
