/**
 * A container on a systemd host, as systemd-nspawn 252 makes it (nspawn.c run_container(), nspawn-register.c):
 * systemd gives the container its cgroup, machined knows the machine. Decided here, executed by the engine
 * (@nspawn/runtime: providesCgroup(), then create_subcgroup() with what attach() answers):
 *
 * - `--register=yes` (the default): at the sync point, PID 1 as the leader, CreateMachineWithNetwork (machined makes
 *   machine-NAME.scope in machine.slice or --slice=, delegated, with --property=, and moves PID 1 into it), or
 *   RegisterMachineWithNetwork under --keep-unit (the caller's own unit, e.g. nspawn@NAME.service);
 * - `--register=no`: a scope of systemd's (NAME.scope), or under --keep-unit nothing: the caller's unit;
 * - systemd's RequestStop (machinectl terminate, systemctl stop) sends the container its kill signal (SIGKILL
 *   without one), as 252's on_request_stop(); UnregisterMachine (or the scope's end) after every boot; a kill -9 of
 *   nspawn takes PID 1 with it and machined drops the machine when its scope empties.
 *
 * A machined that does not answer (no bus, not installed, masked) is 252's error: one line, the start refused
 * before the container's PID 1 exists. Hosts without systemd (no /run/systemd/system): nothing here runs.
 */
import { readFileSync } from 'node:fs';
import type { AttachResult, ContainerExtension, ContainerRun } from '@nspawn/runtime';
import { ContainerError } from '@nspawn/runtime';
import {
  keepUnitRegisterError,
  type Machined,
  MachinedError,
  mainCgroupPath,
  type MachineSpec,
  openMachined,
  parseUnitProperties,
  PropertyError,
} from '@nspawn/machined';
import { hostInterfaceOf } from './network.js';
import { noteRegisteredWithMachined, sdBooted } from './systemd-host.js';

export interface SystemdExtensionOptions {
  /** whether this is a systemd host (default: sdBooted(), sd_booted()) */
  booted?: () => boolean;
  /** the machined client (default: openMachined(), the system bus) */
  open?: () => Promise<Machined>;
  /** the machine's Service (default "nspawn") */
  service?: string;
}

/** what a run on a systemd host gets: registered with machined, a scope of its own, or the caller's unit */
type Mode = 'register' | 'scope' | 'keep';

interface SystemdState {
  mode: Mode;
  machined?: Machined;
  /** the name machined knows this boot by (detach() unregisters it) */
  registered?: string;
  /** the scope allocated for this boot (detach() ends it) */
  scope?: string;
  offStop?: () => void;
}

const SIGKILL = 9;

function modeOf(run: ContainerRun): Mode {
  const cfg = run.cfg;
  if (cfg.register !== false) return 'register';
  return cfg.unit?.keepUnit ? 'keep' : 'scope';
}

/** The cgroup of this process in systemd's main hierarchy (its unit's, under --keep-unit). */
function ownCgroup(): string {
  const path = mainCgroupPath(readFileSync('/proc/self/cgroup', 'utf8'));
  if (path === undefined) throw new ContainerError('Failed to get our own cgroup: /proc/self/cgroup names none systemd manages.');
  return path;
}

/** the ifindex of a host-side link, or undefined (gone, or not ours to see) */
function ifindex(name: string): number | undefined {
  try {
    const n = Number(readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

const asContainerError = (e: unknown): unknown => (e instanceof MachinedError || e instanceof PropertyError ? new ContainerError((e as Error).message) : e);

export function systemdExtension(opts: SystemdExtensionOptions = {}): ContainerExtension {
  const booted = opts.booted ?? sdBooted;
  const open = opts.open ?? (() => openMachined());
  const states = new WeakMap<ContainerRun, SystemdState>();
  // (asked once per extension: the answer does not change during a start)
  let isBooted: boolean | undefined;
  const onSystemd = () => (isBooted ??= booted());

  const spec = (run: ContainerRun, pid: number, mode: Mode): MachineSpec => {
    const cfg = run.cfg;
    const u = cfg.unit;
    const link = hostInterfaceOf(run);
    const index = link === undefined ? undefined : ifindex(link);
    return {
      name: cfg.machineName,
      uuid: cfg.uuid,
      leader: pid,
      rootDirectory: cfg.directory,
      service: opts.service ?? 'nspawn',
      class: 'container',
      ...(index !== undefined ? { netifs: [index] } : {}),
      ...(mode === 'register' && u?.keepUnit ? { keepUnit: true } : {}),
      ...(u?.slice !== undefined ? { slice: u.slice } : {}),
      ...(u?.properties?.length ? { properties: u.properties } : {}),
      ...(u && u.killSignal > 0 ? { killSignal: u.killSignal } : {}),
      binds: cfg.customMounts.filter((m) => m.type === 'bind').map((m) => ({ source: m.source, readOnly: m.readOnly })),
    };
  };

  return {
    name: 'systemd',
    needed: () => onSystemd(),
    providesCgroup: () => onSystemd(),

    async setup(run) {
      if (!onSystemd()) return;
      const mode = modeOf(run);
      const st: SystemdState = { mode };
      states.set(run, st);
      const u = run.cfg.unit;
      if (mode === 'keep') {
        // 252: nothing is sent to systemd, the unit is the caller's
        if (u?.slice !== undefined || u?.properties?.length) run.log('--slice= and --property= have no effect with --register=no --keep-unit.');
        return;
      }
      if (mode === 'register' && u?.keepUnit) {
        const refused = keepUnitRegisterError();
        if (refused) throw new ContainerError(refused);
      }
      // --property= checked before anything is made (as for a service with CreateMachine, a scope otherwise)
      if (u?.properties?.length && !(mode === 'register' && u.keepUnit))
        try {
          parseUnitProperties(u.properties, mode === 'scope' ? 'scope' : 'service');
        } catch (e) {
          throw asContainerError(e);
        }
      try {
        st.machined = await open(); // "Failed to open system bus: ..." as 252
      } catch (e) {
        throw asContainerError(e);
      }
      if (mode === 'register') {
        // a name machined knows already is refused before anything is made (252 learns it from CreateMachine)
        let taken = false;
        try {
          await st.machined.getMachineProperties(run.cfg.machineName);
          taken = true;
        } catch (e) {
          if (!(e instanceof MachinedError) || e.kind !== 'no-such-machine') throw new ContainerError(`Failed to register machine: ${(e as Error).message}`);
        }
        if (taken) throw new ContainerError(`Failed to register machine: Machine '${run.cfg.machineName}' already exists`);
      }
    },

    plan(run, plan) {
      if (states.has(run)) plan.sync = true;
    },

    async attach(run, pid): Promise<AttachResult | undefined> {
      const st = states.get(run);
      if (!st) return undefined;
      const u = run.cfg.unit;
      if (st.mode === 'keep') return { cgroup: ownCgroup(), supervisor: true };
      const machined = st.machined!;
      let cgroup: string;
      let unitPath: string;
      try {
        if (st.mode === 'register') {
          const reg = await machined.register(spec(run, pid, 'register'));
          st.registered = reg.name;
          noteRegisteredWithMachined(run, true);
          cgroup = reg.controlGroup;
          unitPath = reg.unitObjectPath;
        } else {
          const scope = await machined.allocateScope(spec(run, pid, 'scope'));
          st.scope = run.cfg.machineName;
          cgroup = scope.controlGroup;
          unitPath = scope.unitObjectPath;
        }
      } catch (e) {
        throw asContainerError(e);
      }
      // on_request_stop(): systemd asks the Controller (us) to stop the scope
      if (!u?.keepUnit)
        st.offStop = machined.onRequestStop((path) => {
          if (path !== unitPath) return;
          const sig = u && u.killSignal > 0 ? u.killSignal : SIGKILL;
          run.log(sig === SIGKILL ? 'Container termination requested. Killing container.' : 'Container termination requested. Attempting to halt container.');
          try {
            process.kill(pid, sig);
          } catch {
            // gone already
          }
        });
      return { cgroup, ...(st.mode === 'register' && u?.keepUnit ? { supervisor: true } : {}) };
    },

    async detach(run) {
      const st = states.get(run);
      if (!st) return;
      st.offStop?.();
      delete st.offStop;
      noteRegisteredWithMachined(run, false);
      if (st.registered !== undefined) {
        const name = st.registered;
        delete st.registered;
        await st.machined?.unregister(name);
      }
      if (st.scope !== undefined) {
        const name = st.scope;
        delete st.scope;
        await st.machined?.terminateScope(name);
      }
    },

    teardown(run) {
      const st = states.get(run);
      states.delete(run);
      st?.machined?.close();
    },
  };
}
