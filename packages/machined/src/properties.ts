/**
 * `--property=NAME=VALUE` as systemd-nspawn 252 turns it into a unit property on the bus:
 * `bus_append_unit_property_assignment()` of src/shared/bus-unit-util.c, for the properties a scope can have
 * (cgroup, kill and scope properties, and the generic unit ones). 252 parses them as for a service unit when it
 * registers (CreateMachineWithNetwork) and as for a scope when it allocates the scope itself (--register=no); the
 * execution and service properties that the service case would accept are refused by systemd for a scope anyway,
 * so they are "Unknown assignment" here, before anything is sent.
 */
import { Variant } from './bus.js';
import {
  INFINITY64,
  parseBoolean,
  parseCpuSet,
  parsePermyriad,
  parsePermyriadUnbounded,
  parseSec,
  parseSize,
  safeAtou32,
  safeAtou64,
  signalFromString,
  splitWords,
  uint32ScaleFromPermyriad,
  ValueError,
} from './values.js';

/** One `(sv)` entry of a StartTransientUnit/CreateMachine property array. */
export type UnitProperty = [name: string, value: Variant];

/** A bad `--property=` (or scope setting): `message` is systemd's one line for it. */
export class PropertyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PropertyError';
  }
}

const CGROUP_STRING = ['DevicePolicy', 'Slice', 'ManagedOOMSwap', 'ManagedOOMMemoryPressure', 'ManagedOOMPreference'];
const CGROUP_BOOL = ['CPUAccounting', 'MemoryAccounting', 'IOAccounting', 'BlockIOAccounting', 'TasksAccounting', 'IPAccounting'];
const MEMORY_LIMITS = ['MemoryMin', 'DefaultMemoryLow', 'DefaultMemoryMin', 'MemoryLow', 'MemoryHigh', 'MemoryMax', 'MemorySwapMax', 'MemoryLimit', 'TasksMax'];
const LIMIT_MIN_WHEN_EMPTY = ['DefaultMemoryLow', 'DefaultMemoryMin', 'MemoryLow', 'MemoryMin'];
const IO_LIMITS = ['IOReadBandwidthMax', 'IOWriteBandwidthMax', 'IOReadIOPSMax', 'IOWriteIOPSMax', 'BlockIOReadBandwidth', 'BlockIOWriteBandwidth'];
const UNIT_STRING = ['Description', 'SourcePath', 'OnFailureJobMode', 'JobTimeoutAction', 'JobTimeoutRebootArgument', 'StartLimitAction', 'FailureAction', 'SuccessAction', 'RebootArgument', 'CollectMode'];
const UNIT_BOOL = ['StopWhenUnneeded', 'RefuseManualStart', 'RefuseManualStop', 'AllowIsolate', 'IgnoreOnIsolate', 'DefaultDependencies'];
const UNIT_SEC = ['JobTimeoutSec', 'JobRunningTimeoutSec', 'StartLimitIntervalSec'];
const DEPENDENCIES = ['Requires', 'Requisite', 'Wants', 'BindsTo', 'PartOf', 'Upholds', 'Conflicts', 'Before', 'After', 'OnSuccess', 'OnFailure', 'Triggers', 'TriggeredBy', 'PropagatesReloadTo', 'ReloadPropagatedFrom', 'PropagatesStopTo', 'StopPropagatedFrom', 'JoinsNamespaceOf', 'References', 'ReferencedBy', 'InSlice', 'SliceOf'];
const KILL_SIGNALS = ['KillSignal', 'RestartKillSignal', 'FinalKillSignal', 'WatchdogSignal'];
const SCOPE_SEC = ['RuntimeMaxSec', 'RuntimeRandomizedExtraSec', 'TimeoutStopSec'];

const str = (name: string, v: string): UnitProperty => [name, new Variant('s', v)];
const u64 = (name: string, v: bigint): UnitProperty => [name, new Variant('t', v)];

function wrap<T>(f: () => T, onError: (e: ValueError) => string): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof ValueError) throw new PropertyError(onError(e));
    throw e;
  }
}
/** "Failed to parse %s=%s: %m" */
const parsePtr = <T>(field: string, eq: string, f: () => T) => wrap(f, (e) => `Failed to parse ${field}=${eq}: ${e.message}`);
/** "Failed to parse %s: %s" */
const parseInt_ = <T>(field: string, eq: string, f: () => T) => wrap(f, () => `Failed to parse ${field}: ${eq}`);
/** "Sec" → "USec", as bus_append_parse_sec_rename() */
const usecName = (field: string) => `${field.slice(0, -3)}USec`;

function weight(eq: string, min: bigint, max: bigint, idle = false): bigint {
  if (idle && eq === 'idle') return 0n;
  if (eq === '') return INFINITY64; // CGROUP_*_INVALID: reset to the default
  const v = safeAtou64(eq);
  if (v < min || v > max) throw new ValueError('ERANGE');
  return v;
}

function cgroupProperty(field: string, eq: string): UnitProperty | undefined {
  if (CGROUP_STRING.includes(field)) return str(field, eq);
  if (field === 'ManagedOOMMemoryPressureLimit') {
    const p = wrap(() => parsePermyriad(eq), (e) => `Failed to parse ${field} value: ${eq}: ${e.message}`);
    if (p === undefined) throw new PropertyError(`Failed to parse ${field} value: ${eq}`);
    return [field, new Variant('u', uint32ScaleFromPermyriad(p))];
  }
  if (CGROUP_BOOL.includes(field)) return [field, new Variant('b', parseInt_(field, eq, () => parseBoolean(eq)))];
  if (field === 'CPUWeight' || field === 'StartupCPUWeight') return u64(field, parsePtr(field, eq, () => weight(eq, 1n, 10000n, true)));
  if (field === 'IOWeight' || field === 'StartupIOWeight') return u64(field, parsePtr(field, eq, () => weight(eq, 1n, 10000n)));
  if (field === 'CPUShares' || field === 'StartupCPUShares') return u64(field, parsePtr(field, eq, () => weight(eq, 2n, 262144n)));
  if (field === 'BlockIOWeight' || field === 'StartupBlockIOWeight') return u64(field, parsePtr(field, eq, () => weight(eq, 10n, 1000n)));
  if (['AllowedCPUs', 'StartupAllowedCPUs', 'AllowedMemoryNodes', 'StartupAllowedMemoryNodes'].includes(field))
    return [field, new Variant('ay', wrap(() => parseCpuSet(eq), (e) => `Failed to parse ${field} value: ${eq}: ${e.message}`))];
  if (field === 'DisableControllers') return [field, new Variant('as', wrap(() => splitWords(eq), () => `Invalid syntax: ${eq}`))];
  if (field === 'Delegate') {
    try {
      return [field, new Variant('b', parseBoolean(eq))];
    } catch {
      return ['DelegateControllers', new Variant('as', wrap(() => splitWords(eq), () => `Invalid syntax: ${eq}`))];
    }
  }
  if (MEMORY_LIMITS.includes(field)) {
    if (eq === 'infinity') return u64(field, INFINITY64);
    if (eq === '') return u64(field, LIMIT_MIN_WHEN_EMPTY.includes(field) ? 0n : INFINITY64);
    const p = (() => {
      try {
        return parsePermyriad(eq);
      } catch {
        return undefined;
      }
    })();
    if (p !== undefined) return [`${field}Scale`, new Variant('u', uint32ScaleFromPermyriad(p))];
    if (field === 'TasksMax') return u64(field, parsePtr(field, eq, () => safeAtou64(eq)));
    return u64(field, parsePtr(field, eq, () => parseSize(eq, 1024)));
  }
  if (field === 'CPUQuota') {
    if (eq === '') return u64('CPUQuotaPerSecUSec', INFINITY64);
    const p = parsePermyriadUnbounded(eq);
    if (p === 0) throw new PropertyError('CPU quota too small.');
    if (p === undefined) throw new PropertyError(`CPU quota '${eq}' invalid.`);
    return u64('CPUQuotaPerSecUSec', (BigInt(p) * 1_000_000n) / 10000n);
  }
  if (field === 'CPUQuotaPeriodSec') {
    const v = eq === '' ? INFINITY64 : wrap(() => parseSec(eq), () => `CPU quota period '${eq}' invalid.`);
    return u64('CPUQuotaPeriodUSec', v);
  }
  if (field === 'DeviceAllow') {
    if (eq === '') return [field, new Variant('a(ss)', [])];
    const sp = eq.indexOf(' ');
    return [field, new Variant('a(ss)', [sp < 0 ? [eq, ''] : [eq.slice(0, sp), eq.slice(sp + 1)]])];
  }
  if (IO_LIMITS.includes(field)) {
    if (eq === '') return [field, new Variant('a(st)', [])];
    const sp = eq.indexOf(' ');
    if (sp < 0) throw new PropertyError(`Failed to parse ${field} value ${eq}.`);
    const bw = eq.slice(sp + 1);
    const bytes = bw === 'infinity' ? INFINITY64 : wrap(() => parseSize(bw, 1000), (e) => `Failed to parse byte value ${bw}: ${e.message}`);
    return [field, new Variant('a(st)', [[eq.slice(0, sp), bytes]])];
  }
  if (field === 'IODeviceWeight' || field === 'BlockIODeviceWeight') {
    if (eq === '') return [field, new Variant('a(st)', [])];
    const sp = eq.indexOf(' ');
    if (sp < 0) throw new PropertyError(`Failed to parse ${field} value ${eq}.`);
    const w = eq.slice(sp + 1);
    return [field, new Variant('a(st)', [[eq.slice(0, sp), wrap(() => safeAtou64(w), (e) => `Failed to parse ${field} value ${w}: ${e.message}`)]])];
  }
  return undefined;
}

function killProperty(field: string, eq: string): UnitProperty | undefined {
  if (field === 'KillMode') return str(field, eq);
  if (field === 'SendSIGHUP' || field === 'SendSIGKILL') return [field, new Variant('b', parseInt_(field, eq, () => parseBoolean(eq)))];
  if (KILL_SIGNALS.includes(field)) return [field, new Variant('i', parseInt_(field, eq, () => signalFromString(eq)))];
  return undefined;
}

function scopeProperty(field: string, eq: string): UnitProperty | undefined {
  if (SCOPE_SEC.includes(field)) return u64(usecName(field), parsePtr(field, eq, () => parseSec(eq)));
  if (field === 'User' || field === 'Group') return str(field, eq);
  return undefined;
}

function unitProperty(field: string, eq: string): UnitProperty | undefined {
  if (UNIT_STRING.includes(field)) return str(field, eq);
  if (UNIT_BOOL.includes(field)) return [field, new Variant('b', parseInt_(field, eq, () => parseBoolean(eq)))];
  if (UNIT_SEC.includes(field)) return u64(usecName(field), parsePtr(field, eq, () => parseSec(eq)));
  if (field === 'StartLimitBurst') return [field, new Variant('u', parsePtr(field, eq, () => safeAtou32(eq)))];
  if (field === 'SuccessActionExitStatus' || field === 'FailureActionExitStatus') {
    if (eq === '') return [field, new Variant('i', -1)];
    const v = wrap(() => safeAtou32(eq), () => `Failed to parse ${field}=${eq}`);
    if (v > 255) throw new PropertyError(`Failed to parse ${field}=${eq}`);
    return [field, new Variant('i', v)];
  }
  if (field === 'Documentation' || field === 'RequiresMountsFor' || DEPENDENCIES.includes(field))
    return [field, new Variant('as', wrap(() => splitWords(eq), () => `Invalid syntax: ${eq}`))];
  return undefined;
}

/**
 * One `--property=` assignment as systemd-nspawn puts it on the bus. `unit`: 'service' when it goes with
 * CreateMachineWithNetwork (as 252 parses it), 'scope' when the scope is allocated directly (--register=no).
 * Throws a `PropertyError` with systemd's message ("Not an assignment: X", "Unknown assignment: X", "Failed to
 * parse MemoryMax=lots: Invalid argument", ...).
 */
export function parseUnitProperty(assignment: string, unit: 'service' | 'scope' = 'service'): UnitProperty {
  const i = assignment.indexOf('=');
  if (i < 0) throw new PropertyError(`Not an assignment: ${assignment}`);
  const field = assignment.slice(0, i);
  const eq = assignment.slice(i + 1);
  const found =
    cgroupProperty(field, eq) ?? killProperty(field, eq) ?? (unit === 'scope' ? scopeProperty(field, eq) : undefined) ?? unitProperty(field, eq);
  if (!found) throw new PropertyError(`Unknown assignment: ${assignment}`);
  return found;
}

/** `bus_append_unit_property_assignment_many()`: every assignment, in order; the first bad one throws. */
export function parseUnitProperties(assignments: readonly string[], unit: 'service' | 'scope' = 'service'): UnitProperty[] {
  return assignments.map((a) => parseUnitProperty(a, unit));
}
