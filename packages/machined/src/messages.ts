/**
 * The method calls systemd-nspawn 252 makes (src/nspawn/nspawn-register.c), as data: pure functions from a
 * machine's description to a `MethodCall`, so that what goes on the bus is tested without one.
 */
import { statSync } from 'node:fs';
import { Variant, type MethodCall } from './bus.js';
import { mangleUnitName } from './unit-name.js';
import { parseUnitProperties, PropertyError, type UnitProperty } from './properties.js';

export const MACHINED = { destination: 'org.freedesktop.machine1', path: '/org/freedesktop/machine1', interface: 'org.freedesktop.machine1.Manager' } as const;
export const SYSTEMD = { destination: 'org.freedesktop.systemd1', path: '/org/freedesktop/systemd1', interface: 'org.freedesktop.systemd1.Manager' } as const;

/** A container (or VM) as machined is told of it. */
export interface MachineSpec {
  /** the machine name (-M) */
  name: string;
  /** its UUID (`--uuid=`, `$container_uuid`): 32 hex digits, dashes allowed; none: an empty id */
  uuid?: string;
  /** the leader: the container's PID 1 as the host sees it */
  leader: number;
  /** the root directory (-D); 252 sends "" for an image */
  rootDirectory?: string;
  /**
   * host-side interface indices: 252 sends the one of `--network-veth` (`ve-NAME`, or the bridge with
   * `--network-bridge`/`--network-zone`) when there is one
   */
  netifs?: number[];
  /** default "nspawn" (252 sends "systemd-nspawn"; see README "Differences from systemd") */
  service?: string;
  /** default "container" */
  class?: 'container' | 'vm';
  /** `--keep-unit`: register the caller's own unit (RegisterMachineWithNetwork) instead of a new scope */
  keepUnit?: boolean;
  /** `--slice=` (mangled as systemd mangles it: `foo` is `foo.slice`) */
  slice?: string;
  /** `--property=` assignments, in order */
  properties?: readonly string[];
  /** properties already parsed (a .nspawn file's, a caller's own), sent before `properties` */
  extraProperties?: readonly UnitProperty[];
  /** `--kill-signal=` (SIGRTMIN+3 with -b): KillSignal= and KillMode=mixed on the scope */
  killSignal?: number;
  /** `--bind=`/`--bind-ro=` sources: each one that is a device node gets a DeviceAllow= (r or rw) */
  binds?: readonly { source: string; readOnly?: boolean }[];
}

/** The machine's id as `ay`: 16 bytes, or none. */
export function uuidBytes(uuid: string | undefined): Buffer {
  if (!uuid) return Buffer.alloc(0);
  const hex = uuid.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new PropertyError(`Invalid machine UUID: ${uuid}`);
  return Buffer.from(hex, 'hex');
}

/** `is_device_node()`: a character or block device (ENOENT: not yet there, skipped as 252 does). */
export type DeviceCheck = (path: string) => boolean | 'missing';
export const statDeviceCheck: DeviceCheck = (p) => {
  try {
    const st = statSync(p);
    return st.isCharacterDevice() || st.isBlockDevice();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw new PropertyError(`Failed to stat ${p}: ${(e as Error).message}`);
  }
};

/**
 * `append_machine_properties()`: DevicePolicy=closed, DeviceAllow= for /dev/net/tun (rwm) and the ptys (rw), one
 * DeviceAllow= per bound device node, KillSignal= and KillMode=mixed with a kill signal.
 */
export function machineProperties(spec: MachineSpec, isDevice: DeviceCheck = statDeviceCheck): UnitProperty[] {
  const props: UnitProperty[] = [
    ['DevicePolicy', new Variant('s', 'closed')],
    ['DeviceAllow', new Variant('a(ss)', [['/dev/net/tun', 'rwm'], ['char-pts', 'rw']])],
  ];
  for (const b of spec.binds ?? []) {
    const d = isDevice(b.source);
    if (d === true) props.push(['DeviceAllow', new Variant('a(ss)', [[b.source, b.readOnly ? 'r' : 'rw']])]);
  }
  if (spec.killSignal) {
    props.push(['KillSignal', new Variant('i', spec.killSignal)]);
    props.push(['KillMode', new Variant('s', 'mixed')]);
  }
  return props;
}

function header(spec: MachineSpec): unknown[] {
  if (!Number.isInteger(spec.leader) || spec.leader <= 1) throw new PropertyError(`Invalid leader PID: ${spec.leader}`);
  return [
    spec.name,
    uuidBytes(spec.uuid),
    spec.service ?? 'nspawn',
    spec.class ?? 'container',
    spec.leader,
    spec.rootDirectory ?? '',
    [...(spec.netifs ?? [])].filter((i) => i > 0),
  ];
}

/** `RegisterMachineWithNetwork(s name, ay id, s service, s class, u leader, s root_directory, ai netifs)` (--keep-unit) */
export function registerMachineCall(spec: MachineSpec): MethodCall {
  return { ...MACHINED, member: 'RegisterMachineWithNetwork', signature: 'sayssusai', body: header(spec) };
}

/**
 * `CreateMachineWithNetwork(..., a(sv) scope_properties)`: Slice= (with --slice), Controller= (our unique name,
 * so that systemd asks us to stop: RequestStop), the machine properties, then --property=. machined adds the rest
 * of the scope (machine.slice, Delegate=yes, CollectMode=inactive-or-failed, AddRef=yes, TasksMax=16384, PIDs).
 */
export function createMachineCall(spec: MachineSpec, uniqueName: string, isDevice?: DeviceCheck): MethodCall {
  const props: UnitProperty[] = [];
  if (spec.slice) props.push(['Slice', new Variant('s', mangleUnitName(spec.slice, '.slice'))]);
  if (uniqueName) props.push(['Controller', new Variant('s', uniqueName)]);
  props.push(...machineProperties(spec, isDevice));
  props.push(...(spec.extraProperties ?? []));
  props.push(...parseUnitProperties(spec.properties ?? [], 'service'));
  return { ...MACHINED, member: 'CreateMachineWithNetwork', signature: 'sayssusaia(sv)', body: [...header(spec), props] };
}

/** The scope systemd-nspawn makes itself with --register=no (without --keep-unit): NAME.scope, mangled. */
export function scopeUnitName(machineName: string): string {
  return mangleUnitName(machineName, '.scope');
}

/**
 * `allocate_scope()`: `StartTransientUnit(NAME.scope, "fail", [PIDs=[leader], Description="Container NAME",
 * Delegate=yes, CollectMode=inactive-or-failed, AddRef=yes, Slice=machine.slice|--slice, Controller=, the machine
 * properties, --property=], [])`.
 */
export function allocateScopeCall(spec: MachineSpec, uniqueName: string, isDevice?: DeviceCheck): MethodCall {
  if (!Number.isInteger(spec.leader) || spec.leader <= 1) throw new PropertyError(`Invalid leader PID: ${spec.leader}`);
  const props: UnitProperty[] = [
    ['PIDs', new Variant('au', [spec.leader])],
    ['Description', new Variant('s', `Container ${spec.name}`)],
    ['Delegate', new Variant('b', true)],
    ['CollectMode', new Variant('s', 'inactive-or-failed')],
    ['AddRef', new Variant('b', true)],
    ['Slice', new Variant('s', spec.slice ? mangleUnitName(spec.slice, '.slice') : 'machine.slice')],
  ];
  if (uniqueName) props.push(['Controller', new Variant('s', uniqueName)]);
  props.push(...(spec.extraProperties ?? []));
  props.push(...machineProperties(spec, isDevice));
  props.push(...parseUnitProperties(spec.properties ?? [], 'scope'));
  return { ...SYSTEMD, member: 'StartTransientUnit', signature: 'ssa(sv)a(sa(sv))', body: [scopeUnitName(spec.name), 'fail', props, []] };
}
