/**
 * One-line errors, worded as systemd-nspawn 252 words them ("Failed to register machine: <the bus's text>"), with
 * a `kind` a caller can decide on (e.g. fall back to another registry when machined is not there).
 */
import { BusError } from './bus.js';

export type MachinedErrorKind =
  /** no system bus to connect to (no dbus-daemon, no socket) */
  | 'no-bus'
  /** org.freedesktop.machine1 (or systemd1) is not on the bus and cannot be activated */
  | 'no-service'
  /** the bus or polkit refused the call */
  | 'access-denied'
  /** a machine of that name is registered already */
  | 'exists'
  /** no machine (or unit) of that name */
  | 'no-such-machine'
  /** a bad argument, refused before or by the service */
  | 'invalid'
  | 'other';

export class MachinedError extends Error {
  constructor(
    message: string,
    readonly kind: MachinedErrorKind,
    /** the D-Bus error name, when the bus answered with one */
    readonly dbusName?: string,
  ) {
    super(message);
    this.name = 'MachinedError';
  }
}

const KINDS: Record<string, MachinedErrorKind> = {
  'org.freedesktop.DBus.Error.ServiceUnknown': 'no-service',
  'org.freedesktop.DBus.Error.NameHasNoOwner': 'no-service',
  'org.freedesktop.systemd1.UnitMasked': 'no-service',
  'org.freedesktop.DBus.Error.Spawn.ServiceNotFound': 'no-service',
  'org.freedesktop.DBus.Error.AccessDenied': 'access-denied',
  'org.freedesktop.DBus.Error.InteractiveAuthorizationRequired': 'access-denied',
  'org.freedesktop.machine1.MachineExists': 'exists',
  'org.freedesktop.machine1.NoSuchMachine': 'no-such-machine',
  'org.freedesktop.systemd1.NoSuchUnit': 'no-such-machine',
  'org.freedesktop.systemd1.UnitExists': 'exists',
  'org.freedesktop.DBus.Error.InvalidArgs': 'invalid',
  'org.freedesktop.DBus.Error.NoServer': 'no-bus',
  'org.freedesktop.DBus.Error.FileNotFound': 'no-bus',
  'org.freedesktop.DBus.Error.Disconnected': 'no-bus',
};

/** `PREFIX: <the error's text>` (systemd's `bus_error_message()`), one line. */
export function busFailure(prefix: string, e: unknown): MachinedError {
  if (e instanceof MachinedError) return e;
  if (e instanceof BusError) {
    const text = e.message.split('\n')[0] || e.dbusName;
    return new MachinedError(`${prefix}: ${text}`, KINDS[e.dbusName] ?? 'other', e.dbusName);
  }
  return new MachinedError(`${prefix}: ${(e as Error)?.message ?? String(e)}`, 'other');
}
