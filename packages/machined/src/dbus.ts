/**
 * The real bus: the system bus through @jellybrick/dbus-next (a maintained fork of dbus-next; why this library:
 * README "Design"). The library is imported on the first connect only, so that importing this package costs a
 * caller that never connects (a host without systemd) nothing.
 */
import { BusError, Variant, type Bus, type MethodCall, type Signal } from './bus.js';

type DbusNext = typeof import('@jellybrick/dbus-next');
type LibVariant = InstanceType<DbusNext['Variant']>;

/** sd-bus's default: `$DBUS_SYSTEM_BUS_ADDRESS`, else the socket in /run/dbus. */
export function systemBusAddress(env: NodeJS.ProcessEnv = process.env): string {
  return env.DBUS_SYSTEM_BUS_ADDRESS || 'unix:path=/run/dbus/system_bus_socket';
}

const ERRNO_TEXT: Record<string, string> = {
  ENOENT: 'No such file or directory',
  ECONNREFUSED: 'Connection refused',
  EACCES: 'Permission denied',
  EPERM: 'Operation not permitted',
  ECONNRESET: 'Connection reset by peer',
  ETIMEDOUT: 'Connection timed out',
};

/** errno text as strerror() has it (systemd's "%m"), for errors of the socket itself */
export function errnoText(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return (code && ERRNO_TEXT[code]) || (err as Error)?.message || String(err);
}

/** Our values to the library's: `Variant` to its Variant class, recursively. */
function toLib(lib: DbusNext, v: unknown): unknown {
  if (v instanceof Variant) return new lib.Variant(v.signature, toLib(lib, v.value));
  if (Array.isArray(v)) return v.map((x) => toLib(lib, x));
  return v;
}

/** The library's values to ours: its Variants to `Variant`, recursively; objects (a{..}) stay objects. */
function fromLib(lib: DbusNext, v: unknown): unknown {
  if (v instanceof lib.Variant) return new Variant((v as LibVariant).signature, fromLib(lib, (v as LibVariant).value));
  if (Array.isArray(v)) return v.map((x) => fromLib(lib, x));
  if (v && typeof v === 'object' && !Buffer.isBuffer(v) && Object.getPrototypeOf(v) === Object.prototype) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) o[k] = fromLib(lib, x);
    return o;
  }
  return v;
}

export interface ConnectOptions {
  /** a D-Bus address; default `systemBusAddress()` */
  address?: string;
  /** give up connecting after this long (default 10 s) */
  timeoutMs?: number;
  /** give up waiting for a method call's reply after this long (default 25 s, as sd-bus) */
  callTimeoutMs?: number;
}

/**
 * Connects to the system bus (or `address`) and says Hello. Rejects with a `BusError` named
 * `org.freedesktop.DBus.Error.FileNotFound`/`NoServer`/... and a one-line message when there is no bus.
 */
export async function connectSystemBus(opts: ConnectOptions = {}): Promise<Bus> {
  const lib: DbusNext = await import('@jellybrick/dbus-next');
  const address = opts.address ?? systemBusAddress();
  const raw = lib.sessionBus({ busAddress: address });
  // it emits 'error' (its types do not say so); unhandled, that would end the process
  const events = raw as unknown as import('node:events').EventEmitter;
  let closed = false;
  const closers: ((err?: Error) => void)[] = [];
  const markClosed = (err?: Error) => {
    if (closed) return;
    closed = true;
    for (const h of closers) h(err);
  };
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      raw.disconnect();
      reject(new BusError('org.freedesktop.DBus.Error.Timeout', `Connection timed out (${address})`));
    }, opts.timeoutMs ?? 10_000);
    raw.once('connect', () => {
      clearTimeout(timer);
      resolve();
    });
    events.once('error', (err: Error) => {
      clearTimeout(timer);
      reject(new BusError('org.freedesktop.DBus.Error.NoServer', errnoText(err)));
    });
  });
  // after the connection: errors end it (an unhandled 'error' would end the process)
  events.on('error', (err: Error) => markClosed(err));
  (raw as unknown as { connection?: { on(ev: string, f: () => void): void } }).connection?.on('end', () => markClosed());
  const handlers = new Set<(s: Signal) => void>();
  raw.on('message', (msg: InstanceType<DbusNext['Message']>) => {
    if (msg.type !== lib.MessageType.SIGNAL) return;
    const sig: Signal = {
      sender: msg.sender ?? undefined,
      path: msg.path ?? undefined,
      interface: msg.interface ?? undefined,
      member: msg.member ?? undefined,
      signature: msg.signature ?? undefined,
      body: fromLib(lib, msg.body ?? []) as unknown[],
    };
    for (const h of [...handlers]) h(sig);
  });
  const bus: Bus = {
    uniqueName: raw.name ?? '',
    async call(m: MethodCall) {
      if (closed) throw new BusError('org.freedesktop.DBus.Error.Disconnected', 'Transport endpoint is not connected');
      const msg = new lib.Message({
        destination: m.destination,
        path: m.path,
        interface: m.interface,
        member: m.member,
        ...(m.signature ? { signature: m.signature, body: toLib(lib, m.body ?? []) as unknown[] } : {}),
      });
      let timer: NodeJS.Timeout | undefined;
      try {
        // sd-bus's default method call timeout (25 s): a reply that never comes must not hang the caller
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new BusError('org.freedesktop.DBus.Error.Timeout', 'Connection timed out')), opts.callTimeoutMs ?? 25_000);
        });
        const reply = await Promise.race([raw.call(msg), timeout]);
        return fromLib(lib, reply?.body ?? []) as unknown[];
      } catch (e) {
        if (e instanceof BusError) throw e;
        const err = e as { type?: string; text?: string; message?: string };
        if (err && typeof err.type === 'string') throw new BusError(err.type, err.text ?? err.message ?? err.type);
        throw new BusError('org.freedesktop.DBus.Error.Failed', errnoText(e));
      } finally {
        clearTimeout(timer);
      }
    },
    onSignal(h) {
      handlers.add(h);
      return () => handlers.delete(h);
    },
    async addMatch(rule: string) {
      await bus.call({
        destination: 'org.freedesktop.DBus',
        path: '/org/freedesktop/DBus',
        interface: 'org.freedesktop.DBus',
        member: 'AddMatch',
        signature: 's',
        body: [rule],
      });
    },
    onClose(h) {
      closers.push(h);
    },
    close() {
      raw.disconnect();
      markClosed();
    },
  };
  return bus;
}
