/**
 * The small interface the rest of the package talks D-Bus through: a method call in, its reply's body out, signals
 * to a handler. The real one (`connectSystemBus()`, src/dbus.ts) sits on @jellybrick/dbus-next; tests use a fake
 * (`recordingBus()`), so the messages are checked without a bus.
 */

/** A D-Bus value with its type: what goes into a `v` (and what comes out of one). */
export class Variant<T = unknown> {
  constructor(
    readonly signature: string,
    readonly value: T,
  ) {}
}

/** A method call. `body` values: string, number (32-bit and smaller), bigint (`t`/`x`), boolean, Buffer (`ay`), arrays, `Variant`s. */
export interface MethodCall {
  destination: string;
  path: string;
  interface: string;
  member: string;
  signature?: string;
  body?: unknown[];
}

/** A signal received. */
export interface Signal {
  sender?: string;
  path?: string;
  interface?: string;
  member?: string;
  signature?: string;
  body: unknown[];
}

/** An error reply (or a failure to get one): `name` is the D-Bus error name, `message` its text. */
export class BusError extends Error {
  constructor(
    readonly dbusName: string,
    message: string,
  ) {
    super(message);
    this.name = 'BusError';
  }
}

export interface Bus {
  /** our unique name on the bus (`:1.42`), what systemd calls a unit's Controller */
  readonly uniqueName: string;
  /** a method call; resolves to the reply's body, rejects with a `BusError` */
  call(msg: MethodCall): Promise<unknown[]>;
  /** every signal this connection receives (broadcast ones only after `addMatch()`); returns the unsubscribe */
  onSignal(handler: (signal: Signal) => void): () => void;
  /** org.freedesktop.DBus.AddMatch */
  addMatch(rule: string): Promise<void>;
  /** called once when the connection goes away (the bus daemon quit, or `close()`) */
  onClose(handler: (err?: Error) => void): void;
  close(): void;
}

/** A bus that records what it is asked and answers from `reply` (tests, dry runs). */
export function recordingBus(
  reply: (msg: MethodCall) => unknown[] | Promise<unknown[]> = () => [],
  uniqueName = ':1.99',
): Bus & { calls: MethodCall[]; matches: string[]; emit(signal: Signal): void; closed: boolean } {
  const handlers = new Set<(s: Signal) => void>();
  const closers: ((err?: Error) => void)[] = [];
  const bus = {
    uniqueName,
    calls: [] as MethodCall[],
    matches: [] as string[],
    closed: false,
    async call(msg: MethodCall) {
      bus.calls.push(msg);
      return reply(msg);
    },
    onSignal(h: (s: Signal) => void) {
      handlers.add(h);
      return () => handlers.delete(h);
    },
    async addMatch(rule: string) {
      bus.matches.push(rule);
    },
    onClose(h: (err?: Error) => void) {
      closers.push(h);
    },
    emit(signal: Signal) {
      for (const h of [...handlers]) h(signal);
    },
    close() {
      if (bus.closed) return;
      bus.closed = true;
      for (const h of closers) h();
    },
  };
  return bus;
}
