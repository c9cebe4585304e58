/**
 * Runs a prepared container: plans it, starts the native helper, answers its sync point (uid maps), forwards
 * signals by --kill-signal, and maps the container's end to systemd-nspawn's exit status
 * (wait_for_container() and run_container() in nspawn.c).
 */
import type { ChildProcess } from 'node:child_process';
import { signalName } from '@nspawn/settings';
import { type HostFacts, probeHost } from './host.js';
import type { Prepared } from './prepare.js';
import { type HelperEvent, type HelperPlan, encodePlan, parseHelperLine } from './protocol.js';
import { helperPath } from './helper-path.js';
import type { AttachResult, ContainerExtension, ContainerRun } from './extension-api.js';
import { createSubcgroup } from './subcgroup.js';
import { ContainerError } from './errors.js';
import { runRecordOf } from './run-record.js';
import { procStartTime } from './machines.js';
import { defaultHooks, type RunHooks } from './hooks.js';
import { runLifecycle, type Waiter } from './lifecycle.js';
import { endMessages, HALT_MESSAGE, planBoot, setupMachineCgroup } from './boot.js';
import type { MachineCgroup } from './cgroup.js';

export const EXIT_FORCE_RESTART = 133;

export type StdioTriple = [StdioEntry, StdioEntry, StdioEntry];
type StdioEntry = 'inherit' | 'ignore' | number;

/** How the container ended. */
export type ContainerEnd =
  | { kind: 'exited'; code: number }
  | { kind: 'signaled'; signal: number }
  | { kind: 'failed'; message: string }
  /** plan.leaveAfterStart: the container runs on, its PID 1 left to the nearest subreaper */
  | { kind: 'left'; pid: number };

/**
 * Starts the helper. It waits for its plan on fd 3, so it can be started while the plan is still being made
 * (its start-up then overlaps ours); closing fd 3 without a plan makes it leave quietly.
 */
export function spawnHelper(opts: { helper?: string; stdio?: StdioTriple; extraFds?: ExtraFd[] } = {}): ChildProcess {
  // loaded here, not at start-up: a run handed over to the helper (src/handoff.ts) never needs child_process
  const { spawn } = process.getBuiltinModule('node:child_process');
  return spawn(opts.helper ?? helperPath(), [], { argv0: 'nspawn-helper', stdio: [...(opts.stdio ?? ['inherit', 'inherit', 'inherit']), 'pipe', ...(opts.extraFds ?? [])] });
}

/** A descriptor the helper gets after its control socket (fd 4, 5, ...): one of ours, or a connected socket's. */
export type ExtraFd = number | import('node:net').Socket;

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
    /** descriptors the helper gets as 4, 5, ... (the plan's ociFds name them) */
    extraFds?: ExtraFd[];
    /** a helper from spawnHelper() that has not been given a plan yet */
    child?: ChildProcess;
    /** --notify-ready=yes: hooks.onReady() waits for READY=1 from the container's init */
    notifyReady?: boolean;
    /**
     * --console=passive: called with the container's end once the helper holds the console's rest; what it says
     * about the end comes before that rest on stdout, which goes out when it returns true (the default)
     */
    onHeld?: (end: ContainerEnd) => boolean;
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
    /** how the container ended, as far as the helper said (undefined: it did not yet) */
    const ended = (): ContainerEnd | undefined => (error !== undefined ? { kind: 'failed', message: error } : end);
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
        case 'left':
          end = { kind: 'left', pid };
          break;
        case 'held': {
          // (after a SIGHUP nothing: systemd-nspawn 252 dies of it before its end copies the rest)
          const now = ended();
          ctl.write(!hungUp && (!now || (opts.onHeld?.(now) ?? true)) ? 'drain\n' : 'drop\n');
          break;
        }
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
      resolvePromise(ended() ?? { kind: 'failed', message: `nspawn-helper ended without a status (${sig ?? `exit ${code}`})` });
    });
  });
}

/**
 * Runs a prepared container to its end, rebooting it as systemd-nspawn does, and returns the exit status
 * nspawn should exit with: the lifecycle (lifecycle.ts) with the helper as our child, supervised here.
 */
export async function runContainer(
  p: Prepared,
  hooks: RunHooks = defaultHooks,
  hostFacts?: HostFacts,
  stdio?: StdioTriple,
  extensions: readonly ContainerExtension[] = [],
): Promise<number> {
  return await runLifecycle(p, extensions, hooks, hostFacts ?? probeHost(), supervised(stdio));
}

/** The supervised waiter: each boot's helper is our child; attach() at its sync point, detach() after it, reboots. */
export const supervised = (stdio?: StdioTriple): Waiter => ({
  handoff: false,
  boots: (p, run, extensions, host, hooks) => bootLoop(p, hooks, run, extensions, host, stdio),
});

async function bootLoop(
  p: Prepared,
  hooks: RunHooks,
  run: ContainerRun,
  extensions: readonly ContainerExtension[],
  host: HostFacts,
  stdio: StdioTriple | undefined,
): Promise<number> {
  const cfg = p.config;
  // an extension gives the container its cgroup (systemd's scope on a systemd host): none of our own is made
  const external = extensions.some((x) => x.providesCgroup?.(cfg) === true);
  for (;;) {
    // the helper starts first and waits for its plan: its exec overlaps the planning below
    const child = hooks.spawnHelper?.() ?? spawnHelper(stdio ? { stdio } : {});
    let end: ContainerEnd;
    let cleanup = () => {};
    let machine: MachineCgroup | undefined;
    let ran = false;
    let outcome: number | 'again' | undefined;
    try {
      const boot = planBoot(p, run, extensions, host, hooks);
      cleanup = boot.cleanup;
      const plan = boot.plan;
      // a helper that outlives us (nspawnd's): the run lives as long as it does, whoever holds the record
      if (plan.survive && child.pid !== undefined) runRecordOf(cfg)?.note({ survivor: { pid: child.pid, startTime: procStartTime(child.pid) ?? 0 } });
      if (external) {
        // PID 1 waits at the sync point where the helper is, and makes its cgroup namespace once it is in payload/
        plan.sync = true;
        plan.cgnsLate = true;
      } else if (child.pid !== undefined) machine = setupMachineCgroup(cfg, host, plan, child.pid, hooks);
      try {
        machine?.check();
      } catch (e) {
        machine = undefined; // another nspawn's now: not ours to remove
        throw e;
      }
      ran = true;
      end = await runPlan(plan, {
        // 252 says how the container ended before its console's rest; a reboot it follows drops that rest
        onHeld: (e) => (outcome = conclude(e)) !== 'again',
        killSignal: p.killSignal,
        attach: async (pid) => {
          let given: AttachResult | undefined;
          for (const x of extensions) {
            const r = await x.attach?.(run, pid);
            if (r?.cgroup !== undefined) given = r;
          }
          if (!external) return;
          if (given?.cgroup === undefined) throw new ContainerError(`Failed to place machine ${cfg.machineName}: no extension said which cgroup it is in.`);
          createSubcgroup({
            layout: host.cgroups,
            cgroup: given.cgroup,
            pid,
            ...(given.supervisor ? { supervisor: true } : {}),
            ...(cfg.userns ? { owner: cfg.userns.shift } : {}),
          });
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
    outcome ??= conclude(end);
    if (outcome !== 'again') return outcome;
  }

  /** Says how a boot ended (wait_for_container()'s messages) and gives nspawn's exit status, or 'again': reboot. */
  function conclude(end: ContainerEnd): number | 'again' {
    const say = (l: string) => {
      if (!p.quiet) hooks.log(l);
    };
    const msg = endMessages(p.config.machineName);
    switch (end.kind) {
      case 'failed':
        hooks.log(end.message);
        return 1;
      case 'left':
        // nspawn's plans never leave their container
        return 0;
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
          return p.keepUnit ? EXIT_FORCE_RESTART : 'again';
        }
        hooks.log(msg.signal.replace('{}', signalName(end.signal)));
        return 1;
    }
  }
}
