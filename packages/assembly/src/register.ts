/**
 * Registration with nspawnd, as systemd-nspawn registers with machined: each boot, once the container's PID 1
 * exists and before its payload runs, io.systemd.Machine.Register; at the boot's end, Unregister. --register=no
 * skips it. Unlike systemd-nspawn (which fails without machined unless --register=no), no daemon running is not an
 * error: nspawn then runs unregistered, silently.
 */
import { existsSync } from 'node:fs';
import type { ContainerExtension, ContainerRun } from '@nspawn/runtime';
import { registeredWithMachined } from './systemd-host.js';
import { isNoDaemon, machineSocketPath, registerMachine, unregisterMachine } from '@nspawn/runtime';

const registered = new WeakMap<ContainerRun, string>();
/** the extensions registerExtension() made: known by identity, not by their name */
const made = new WeakSet<ContainerExtension>();

/** Whether X is a registerExtension() (startContainer()'s `register: false` drops it). */
export function isRegisterExtension(x: ContainerExtension): boolean {
  return made.has(x);
}

export function registerExtension(opts: { socket?: string; service?: string } = {}): ContainerExtension {
  const socket = () => opts.socket ?? machineSocketPath();
  const x: ContainerExtension = {
    name: 'register',
    // with no daemon to tell, nothing stays to do after the start (nspawn may hand over to the helper)
    needed: (cfg) => cfg.register !== false && existsSync(socket()),
    plan(run, plan) {
      // the container waits at its sync point until it is registered (only when a daemon may be listening)
      if (run.cfg.register !== false && existsSync(socket())) plan.sync = true;
    },
    async attach(run, pid) {
      const cfg = run.cfg;
      if (cfg.register === false || !existsSync(socket())) return;
      // on a systemd host machined knows the machine: nspawnd reads it from there (no double registration)
      if (registeredWithMachined(run)) return;
      try {
        await registerMachine(
          {
            name: cfg.machineName,
            id: cfg.uuid.replace(/-/g, ''),
            service: opts.service ?? 'nspawn',
            class: 'container',
            leader: pid,
            supervisor: process.pid,
            rootDirectory: cfg.directory,
            ...(cfg.userns ? { UIDShift: cfg.userns.shift } : {}),
          },
          { socket: socket() },
        );
        registered.set(run, cfg.machineName);
      } catch (e) {
        if (isNoDaemon(e)) return;
        throw new Error(`Failed to register machine: ${(e as Error).message}`);
      }
    },
    async detach(run) {
      const name = registered.get(run);
      if (name === undefined) return;
      registered.delete(run);
      try {
        await unregisterMachine(name, { socket: socket() });
      } catch {
        // the daemon went away or forgot it already: it drops machines whose leader is gone
      }
    },
  };
  made.add(x);
  return x;
}
