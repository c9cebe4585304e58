/**
 * machined and systemd on a systemd host, as systemd-nspawn 252 uses them: register (or create) a machine, get the
 * scope's cgroup back, unregister, terminate; allocate/terminate the scope of --register=no; and the read side for
 * nspawnctl/nspawnd: ListMachines and a machine's properties.
 */
import { BusError, Variant, type Bus, type MethodCall, type Signal } from './bus.js';
import { connectSystemBus, errnoText, type ConnectOptions } from './dbus.js';
import { busFailure, MachinedError } from './errors.js';
import { allocateScopeCall, createMachineCall, MACHINED, registerMachineCall, scopeUnitName, SYSTEMD, type DeviceCheck, type MachineSpec } from './messages.js';
import { PropertyError } from './properties.js';

/** What a registration got: machined's object, the unit the machine lives in and that unit's cgroup. */
export interface Registration {
  name: string;
  /** machined's object path of the machine */
  objectPath: string;
  /** `machine-NAME.scope` (created), or the caller's own unit (--keep-unit) */
  unit: string;
  /**
   * the unit's cgroup relative to the cgroup root, e.g. `/machine.slice/machine-foo.scope` (systemd's
   * ControlGroup property): the same path below /sys/fs/cgroup (cgroup2) or /sys/fs/cgroup/{unified,systemd}
   * (hybrid); delegated to the caller, who may create sub-cgroups (payload/) in it
   */
  controlGroup: string;
  /** systemd's object path of the unit: the `path` of the RequestStop signal systemd sends about it */
  unitObjectPath: string;
}

/** A machine as ListMachines lists it. */
export interface MachineListEntry {
  name: string;
  class: string;
  service: string;
  objectPath: string;
}

/** A machine's properties (org.freedesktop.machine1.Machine), as `machinectl show` shows them. */
export interface MachineProperties {
  Name: string;
  /** 32 hex digits, "" when none */
  Id: string;
  /** µs since the epoch */
  Timestamp: bigint;
  TimestampMonotonic: bigint;
  Service: string;
  Unit: string;
  Leader: number;
  Class: string;
  RootDirectory: string;
  NetworkInterfaces: number[];
  State: string;
}

const PROPS_IFACE = 'org.freedesktop.DBus.Properties';

/** systemd's D-Bus interface of a unit's type (where its ControlGroup property lives). */
function unitInterface(unit: string): string {
  const t = unit.slice(unit.lastIndexOf('.') + 1);
  const map: Record<string, string> = { scope: 'Scope', service: 'Service', slice: 'Slice', socket: 'Socket', mount: 'Mount', swap: 'Swap' };
  const iface = map[t];
  if (!iface) throw new MachinedError(`Unit ${unit} has no control group`, 'invalid');
  return `org.freedesktop.systemd1.${iface}`;
}

const unwrap = (v: unknown) => (v instanceof Variant ? v.value : v);

export class Machined {
  constructor(readonly bus: Bus) {}

  private async call(prefix: string, msg: MethodCall): Promise<unknown[]> {
    try {
      return await this.bus.call(msg);
    } catch (e) {
      throw busFailure(prefix, e);
    }
  }

  /**
   * What systemd-nspawn 252 does once the container's PID 1 exists (before the payload runs):
   * RegisterMachineWithNetwork with --keep-unit, else CreateMachineWithNetwork (machined then makes
   * machine-NAME.scope, delegated, moves the leader into it and answers once the scope runs). Then reads back the
   * unit and its cgroup. Errors: "Failed to register machine: ..." (`MachinedError`).
   */
  async register(spec: MachineSpec, opts: { isDevice?: DeviceCheck } = {}): Promise<Registration> {
    let msg: MethodCall;
    try {
      msg = spec.keepUnit ? registerMachineCall(spec) : createMachineCall(spec, this.bus.uniqueName, opts.isDevice);
    } catch (e) {
      if (e instanceof PropertyError) throw new MachinedError(e.message, 'invalid');
      throw e;
    }
    const [objectPath] = (await this.call('Failed to register machine', msg)) as [string];
    try {
      const props = await this.getMachineProperties(spec.name, objectPath);
      const unit = await this.unitInfo(props.Unit);
      return { name: spec.name, objectPath, unit: props.Unit, controlGroup: unit.controlGroup, unitObjectPath: unit.objectPath };
    } catch (e) {
      // registered, but not usable: do not leave it behind
      await this.unregister(spec.name);
      throw e instanceof MachinedError ? new MachinedError(`Failed to register machine: ${e.message}`, e.kind, e.dbusName) : e;
    }
  }

  /** `UnregisterMachine`: failures are ignored, as 252 ignores them (machined forgets a machine whose unit is gone). Resolves to whether machined said yes. */
  async unregister(name: string): Promise<boolean> {
    try {
      await this.bus.call({ ...MACHINED, member: 'UnregisterMachine', signature: 's', body: [name] });
      return true;
    } catch {
      return false;
    }
  }

  /** `TerminateMachine`: machined stops the machine's unit (all its processes). */
  async terminate(name: string): Promise<void> {
    await this.call(`Could not terminate machine ${name}`, { ...MACHINED, member: 'TerminateMachine', signature: 's', body: [name] });
  }

  /** `KillMachine(name, who: "leader"|"all", signal)` */
  async kill(name: string, who: 'leader' | 'all', signal: number): Promise<void> {
    await this.call(`Could not kill machine ${name}`, { ...MACHINED, member: 'KillMachine', signature: 'ssi', body: [name, who, signal] });
  }

  /** `ListMachines`: every registered machine (the host's own ".host" included, as machined lists it). */
  async list(): Promise<MachineListEntry[]> {
    const [rows] = (await this.call('Could not get machines', { ...MACHINED, member: 'ListMachines' })) as [[string, string, string, string][]];
    return rows.map(([name, cls, service, objectPath]) => ({ name, class: cls, service, objectPath }));
  }

  /** `GetMachine` then the machine object's properties. Unknown name: `MachinedError` of kind 'no-such-machine'. */
  async getMachineProperties(name: string, objectPath?: string): Promise<MachineProperties> {
    const path = objectPath ?? ((await this.call(`Could not get machine ${name}`, { ...MACHINED, member: 'GetMachine', signature: 's', body: [name] })) as [string])[0];
    const [all] = (await this.call(`Could not get properties of machine ${name}`, {
      destination: MACHINED.destination,
      path,
      interface: PROPS_IFACE,
      member: 'GetAll',
      signature: 's',
      body: ['org.freedesktop.machine1.Machine'],
    })) as [Record<string, unknown>];
    const p = Object.fromEntries(Object.entries(all).map(([k, v]) => [k, unwrap(v)]));
    const id = p.Id as Buffer | number[] | undefined;
    return {
      Name: String(p.Name ?? name),
      Id: id ? Buffer.from(id as Uint8Array).toString('hex') : '',
      Timestamp: BigInt((p.Timestamp as bigint | number | undefined) ?? 0),
      TimestampMonotonic: BigInt((p.TimestampMonotonic as bigint | number | undefined) ?? 0),
      Service: String(p.Service ?? ''),
      Unit: String(p.Unit ?? ''),
      Leader: Number(p.Leader ?? 0),
      Class: String(p.Class ?? ''),
      RootDirectory: String(p.RootDirectory ?? ''),
      NetworkInterfaces: ((p.NetworkInterfaces as number[] | undefined) ?? []).map(Number),
      State: String(p.State ?? ''),
    };
  }

  /** systemd's ControlGroup of a unit (`GetUnit`, then the property of the unit's type). */
  async unitControlGroup(unit: string): Promise<string> {
    return (await this.unitInfo(unit)).controlGroup;
  }

  private async unitInfo(unit: string): Promise<{ objectPath: string; controlGroup: string }> {
    const [path] = (await this.call(`Failed to get unit ${unit}`, { ...SYSTEMD, member: 'GetUnit', signature: 's', body: [unit] })) as [string];
    const [cg] = (await this.call(`Failed to get the control group of ${unit}`, {
      destination: SYSTEMD.destination,
      path,
      interface: PROPS_IFACE,
      member: 'Get',
      signature: 'ss',
      body: [unitInterface(unit), 'ControlGroup'],
    })) as [unknown];
    const value = String(unwrap(cg) ?? '');
    if (!value) throw new MachinedError(`Unit ${unit} has no control group (not running?)`, 'other');
    return { objectPath: path, controlGroup: value };
  }

  /**
   * `allocate_scope()`: --register=no without --keep-unit on a systemd host: systemd makes `NAME.scope` (delegated,
   * in machine.slice or --slice) with the leader in it; resolves once its start job is done.
   * Errors: "Failed to allocate scope: ...".
   */
  async allocateScope(
    spec: MachineSpec,
    opts: { isDevice?: DeviceCheck; timeoutMs?: number } = {},
  ): Promise<{ unit: string; controlGroup: string; unitObjectPath: string }> {
    let msg: MethodCall;
    try {
      msg = allocateScopeCall(spec, this.bus.uniqueName, opts.isDevice);
    } catch (e) {
      if (e instanceof PropertyError) throw new MachinedError(e.message, 'invalid');
      throw e;
    }
    const unit = scopeUnitName(spec.name);
    // as bus_wait_for_jobs: watch JobRemoved before the job exists, so that its end is not missed
    const done = new Map<string, string>();
    const waiters = new Map<string, (result: string) => void>();
    const off = this.bus.onSignal((s: Signal) => {
      if (s.interface !== SYSTEMD.interface || s.member !== 'JobRemoved') return;
      const [, job, , result] = s.body as [number, string, string, string];
      const w = waiters.get(job);
      if (w) w(result);
      else done.set(job, result);
    });
    try {
      await this.bus
        .addMatch(`type='signal',sender='${SYSTEMD.destination}',path='${SYSTEMD.path}',interface='${SYSTEMD.interface}',member='JobRemoved'`)
        .catch((e: unknown) => {
          throw busFailure('Failed to allocate scope', e);
        });
      const [job] = (await this.call('Failed to allocate scope', msg)) as [string];
      const result =
        done.get(job) ??
        (await new Promise<string>((resolve, reject) => {
          const timer = setTimeout(() => reject(new MachinedError(`Failed to allocate scope: no answer for the start job of ${unit}`, 'other')), opts.timeoutMs ?? 30_000);
          waiters.set(job, (r) => {
            clearTimeout(timer);
            resolve(r);
          });
        }));
      if (result !== 'done') throw new MachinedError(`Failed to allocate scope: Job for ${unit} failed with result '${result}'.`, 'other');
    } finally {
      off();
    }
    const info = await this.unitInfo(unit);
    return { unit, controlGroup: info.controlGroup, unitObjectPath: info.objectPath };
  }

  /** `terminate_scope()`: AbandonScope, KillUnit(all, SIGKILL), UnrefUnit, each failure ignored (as 252 does). */
  async terminateScope(machineName: string): Promise<void> {
    const unit = scopeUnitName(machineName);
    for (const [member, signature, body] of [
      ['AbandonScope', 's', [unit]],
      ['KillUnit', 'ssi', [unit, 'all', 9]],
      ['UnrefUnit', 's', [unit]],
    ] as const)
      await this.bus.call({ ...SYSTEMD, member, signature, body: [...body] }).catch(() => undefined);
  }

  /**
   * systemd's RequestStop to the scope's Controller (us): sent when the scope is asked to stop (`machinectl
   * terminate`, `systemctl stop`, shutdown), instead of SIGTERM; 252 answers by sending the container its kill
   * signal. Returns the unsubscribe.
   */
  onRequestStop(handler: (unitObjectPath: string) => void): () => void {
    void this.bus
      .addMatch(`type='signal',sender='${SYSTEMD.destination}',interface='org.freedesktop.systemd1.Scope',member='RequestStop'`)
      .catch(() => undefined);
    return this.bus.onSignal((s) => {
      if (s.interface === 'org.freedesktop.systemd1.Scope' && s.member === 'RequestStop' && s.path) handler(s.path);
    });
  }

  close(): void {
    this.bus.close();
  }
}

/**
 * Connects to the system bus for machined: a `Machined` client, or a `MachinedError` of kind 'no-bus' with 252's
 * "Failed to open system bus: ..." line.
 */
export async function openMachined(opts: ConnectOptions = {}): Promise<Machined> {
  try {
    return new Machined(await connectSystemBus(opts));
  } catch (e) {
    const text = e instanceof BusError ? e.message : errnoText(e);
    throw new MachinedError(`Failed to open system bus: ${text}`, 'no-bus', e instanceof BusError ? e.dbusName : undefined);
  }
}
