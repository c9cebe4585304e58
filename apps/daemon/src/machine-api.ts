/**
 * io.systemd.Machine (Register, Unregister, List, Kill, Terminate) over the registry, and nspawnd's own
 * io.nspawn.Machine (Start, Poweroff) over the supervisor: each method with the types of its parameters, checked
 * by the varlink server before the method runs (a field of another type is InvalidParameter, as in systemd).
 */
import { VarlinkError, type VarlinkMethod, type VarlinkParams } from '@nspawn/runtime';
import { machineNameIsValid } from '@nspawn/settings';
import { admit } from './admission.js';
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

export function machineMethods(registry: Registry, supervisor: Supervisor): Record<string, VarlinkMethod> {
  const info = (m: Machine, metadata: boolean) => registry.describe(m, metadata, supervisor.isStopping(m.record.info.name) ? 'closing' : 'running') as unknown as Record<string, unknown>;
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
      handler: (p, ctx) => {
        if (p.acquireMetadata !== undefined && p.acquireMetadata !== null && !['no', 'yes', 'graceful'].includes(p.acquireMetadata as string)) throw invalid('acquireMetadata');
        const metadata = p.acquireMetadata === 'yes' || p.acquireMetadata === 'graceful';
        if ((p.name ?? null) !== null || (p.pid ?? null) !== null) return info(registry.lookup(p), metadata);
        const all = registry.list();
        if (all.length === 0) throw new VarlinkError('io.systemd.Machine.NoSuchMachine', {});
        if (!ctx.call.more && all.length > 1) throw new VarlinkError('org.varlink.service.ExpectedMore', {});
        for (const m of all.slice(0, -1)) ctx.reply(info(m, metadata));
        return info(all[all.length - 1]!, metadata);
      },
    },
    'io.systemd.Machine.Kill': {
      params: { ...LOOKUP, whom: 'string', signal: { type: 'integer', required: true } },
      handler: (p) => {
        const sig = p.signal as number;
        if (sig <= 0 || sig > NSIG) throw invalid('signal');
        const whom = (p.whom ?? 'all') as string;
        if (whom !== 'all' && whom !== 'leader' && whom !== 'supervisor') throw invalid('whom');
        registry.kill(registry.lookup(p), whom as KillWhom, sig);
        return {};
      },
    },
    'io.systemd.Machine.Terminate': {
      params: LOOKUP,
      handler: (p) => {
        const m = registry.lookup(p);
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
      handler: (p) => {
        const m = registry.lookup(p);
        supervisor.markStopping(m.record.info.name);
        registry.kill(m, 'leader', SIGRTMIN_4);
        return {};
      },
    },
  };
}
