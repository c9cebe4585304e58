/**
 * io.systemd.Machine (Register, Unregister, List, Kill, Terminate) over the registry, and nspawnd's own
 * io.nspawn.Machine (Start, Poweroff) over the supervisor: each method with the types of its parameters, checked
 * by the varlink server before the method runs (a field of another type is InvalidParameter, as in systemd).
 *
 * On a systemd host where machined answers (MACHINED, machined-view.ts), List, Kill, Terminate and Poweroff reach
 * machined's machines too: nspawnd's own registry first (the machines it runs or that registered with it), then
 * machined's, so that nspawnd lists what machinectl lists.
 */
import { VarlinkError, type VarlinkMethod, type VarlinkParams } from '@nspawn/runtime';
import { machineNameIsValid } from '@nspawn/settings';
import { admit } from './admission.js';
import type { MachinedView } from './machined-view.js';
import type { KillWhom, Machine, Registry } from './registry.js';
import type { Supervisor } from './supervision.js';

const invalid = (parameter: string) => new VarlinkError('org.varlink.service.InvalidParameter', { parameter });

/** How a call names a machine (VARLINK_DISPATCH_MACHINE_LOOKUP_FIELDS). */
const LOOKUP: VarlinkParams = { name: 'string', pid: { type: ['uint', 'object'] } };
const pid: VarlinkParams[string] = { type: ['uint', 'object'] };

const REGISTER: VarlinkParams = {
  name: { type: 'string', required: true },
  id: 'string',
  service: 'string',
  class: 'string',
  leader: pid,
  leaderProcessId: 'object',
  supervisor: pid,
  supervisorProcessId: 'object',
  rootDirectory: 'string',
  ifIndices: 'integer[]',
  vSockCid: 'uint',
  sshAddress: 'string',
  sshPrivateKeyPath: 'string',
  allocateUnit: 'boolean',
  UIDShift: 'uint',
};

/** the real-time signals Linux has (SIGRTMAX is 64) */
const NSIG = 64;
/** SIGRTMIN+4: poweroff for systemd (and busybox init) */
const SIGRTMIN_4 = 38;

export function machineMethods(registry: Registry, supervisor: Supervisor, machined?: MachinedView): Record<string, VarlinkMethod> {
  const info = (m: Machine, metadata: boolean) => registry.describe(m, metadata, supervisor.isStopping(m.record.info.name) ? 'closing' : 'running') as unknown as Record<string, unknown>;
  /** the machine of P in nspawnd's registry, or (machined's) its name when only machined may know it */
  const find = (p: Record<string, unknown>): Machine | string => {
    try {
      return registry.lookup(p);
    } catch (e) {
      if (machined && typeof p.name === 'string' && e instanceof VarlinkError && e.error === 'io.systemd.Machine.NoSuchMachine') return p.name;
      throw e;
    }
  };
  /** every machine: nspawnd's own, and machined's it does not have (by name), sorted by name */
  const listAll = async (metadata: boolean): Promise<Array<Record<string, unknown>>> => {
    const own = registry.list();
    const names = new Set(own.map((m) => m.record.info.name));
    const all = own.map((m) => info(m, metadata));
    if (machined) for (const m of await machined.list(metadata)) if (!names.has(m.name)) all.push(m as unknown as Record<string, unknown>);
    // by name as code points (strcmp(), as machinectl sorts its table)
    return all.sort((a, b) => (String(a.name) < String(b.name) ? -1 : String(a.name) > String(b.name) ? 1 : 0));
  };
  return {
    'io.systemd.Machine.Register': {
      params: REGISTER,
      handler: (p, ctx) => {
        const m = admit(p, ctx.peer, registry);
        registry.add(m);
        return {};
      },
    },
    'io.systemd.Machine.Unregister': {
      params: LOOKUP,
      handler: (p) => {
        registry.drop(registry.lookup(p).record.info.name);
        return {};
      },
    },
    'io.systemd.Machine.List': {
      params: { ...LOOKUP, acquireMetadata: 'string' },
      handler: async (p, ctx) => {
        if (p.acquireMetadata !== undefined && p.acquireMetadata !== null && !['no', 'yes', 'graceful'].includes(p.acquireMetadata as string)) throw invalid('acquireMetadata');
        const metadata = p.acquireMetadata === 'yes' || p.acquireMetadata === 'graceful';
        if ((p.name ?? null) !== null || (p.pid ?? null) !== null) {
          const m = find(p);
          if (typeof m !== 'string') return info(m, metadata);
          const got = await machined!.get(m, metadata);
          if (!got) throw new VarlinkError('io.systemd.Machine.NoSuchMachine', { message: `No machine '${m}' known` });
          return got as unknown as Record<string, unknown>;
        }
        const all = await listAll(metadata);
        if (all.length === 0) throw new VarlinkError('io.systemd.Machine.NoSuchMachine', {});
        if (!ctx.call.more && all.length > 1) throw new VarlinkError('org.varlink.service.ExpectedMore', {});
        for (const m of all.slice(0, -1)) ctx.reply(m);
        return all[all.length - 1]!;
      },
    },
    'io.systemd.Machine.Kill': {
      params: { ...LOOKUP, whom: 'string', signal: { type: 'integer', required: true } },
      handler: async (p) => {
        const sig = p.signal as number;
        if (sig <= 0 || sig > NSIG) throw invalid('signal');
        const whom = (p.whom ?? 'all') as string;
        if (whom !== 'all' && whom !== 'leader' && whom !== 'supervisor') throw invalid('whom');
        const m = find(p);
        if (typeof m !== 'string') registry.kill(m, whom as KillWhom, sig);
        else if (whom === 'supervisor') throw new VarlinkError('io.systemd.Machine.NotAvailable', { message: `machined signals no supervisor (machine '${m}')` });
        else await machined!.kill(m, whom, sig);
        return {};
      },
    },
    'io.systemd.Machine.Terminate': {
      params: LOOKUP,
      handler: async (p) => {
        const m = find(p);
        if (typeof m === 'string') {
          await machined!.terminate(m);
          return {};
        }
        // a stop nspawnd must not undo by starting it again
        supervisor.markStopping(m.record.info.name);
        registry.kill(m, 'leader', 9);
        return {};
      },
    },
    // nspawnd's own interface: what machined leaves to systemd (starting nspawn@NAME.service)
    'io.nspawn.Machine.Start': {
      params: { name: { type: 'string', required: true }, command: 'string[]', wait: 'boolean' },
      handler: async (p) => {
        const name = p.name as string;
        if (!machineNameIsValid(name)) throw invalid('name');
        const command = p.command as string[] | undefined;
        if (command && command.length === 0) throw invalid('command');
        const { ended } = await supervisor.startMachine(name, command ?? undefined);
        if (p.wait === true) return { exitStatus: await ended };
        const m = registry.running(name);
        return m ? info(m, true) : {};
      },
    },
    'io.nspawn.Machine.Poweroff': {
      params: LOOKUP,
      handler: async (p) => {
        const m = find(p);
        if (typeof m === 'string') {
          await machined!.kill(m, 'leader', SIGRTMIN_4);
          return {};
        }
        supervisor.markStopping(m.record.info.name);
        registry.kill(m, 'leader', SIGRTMIN_4);
        return {};
      },
    },
  };
}
