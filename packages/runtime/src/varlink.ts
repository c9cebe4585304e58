/**
 * Varlink (https://varlink.org) over a Unix socket, as systemd speaks it: each message is one JSON object followed
 * by a NUL byte. A call is {method, parameters, more?, oneway?}; a reply is {parameters, continues?} or
 * {error, parameters}. The codec, a client and a small server; no dependency beyond node:net.
 */
import type { Server, Socket } from 'node:net';

// node:net (and the streams) loaded when a varlink call or server is made, not when nspawn starts
const net = () => process.getBuiltinModule('node:net');

export interface VarlinkCall {
  method: string;
  parameters?: Record<string, unknown>;
  more?: boolean;
  oneway?: boolean;
}

export interface VarlinkReply {
  parameters?: Record<string, unknown>;
  continues?: boolean;
  error?: string;
}

/** An error reply: `error` is the qualified name (io.systemd.Machine.NoSuchMachine). */
export class VarlinkError extends Error {
  constructor(
    readonly error: string,
    readonly parameters: Record<string, unknown> = {},
  ) {
    super(typeof parameters.message === 'string' ? `${error}: ${parameters.message}` : error);
  }
}

/**
 * The largest message either side accepts, systemd's VARLINK_BUFFER_MAX (16 MiB): a peer that sends more without
 * ending its message loses the connection, and nothing of it is kept or echoed.
 */
export const VARLINK_MESSAGE_MAX = 16 * 1024 * 1024;

export function encodeVarlink(msg: VarlinkCall | VarlinkReply): Buffer {
  return Buffer.from(`${JSON.stringify(msg)}\0`, 'utf8');
}

/** A message over the cap: the connection it came on is dropped. */
export class VarlinkOverflowError extends Error {
  constructor(max: number) {
    super(`varlink: a message exceeds ${max >= 1024 * 1024 ? `${max / (1024 * 1024)} MiB` : `${max} bytes`}`);
  }
}

/**
 * Splits a byte stream into messages; throws on a message that is not a JSON object, and VarlinkOverflowError
 * (dropping what it held) as soon as a message grows past MAX bytes, so a peer can never make it hold more.
 */
export class VarlinkDecoder {
  private parts: Buffer[] = [];
  private size = 0;
  constructor(readonly max = VARLINK_MESSAGE_MAX) {}
  push(chunk: Buffer): unknown[] {
    const out: unknown[] = [];
    let start = 0;
    for (let i = chunk.indexOf(0); i >= 0; i = chunk.indexOf(0, start)) {
      if (this.size + (i - start) > this.max) this.overflow();
      this.parts.push(chunk.subarray(start, i));
      const text = Buffer.concat(this.parts).toString('utf8');
      this.parts = [];
      this.size = 0;
      start = i + 1;
      const v: unknown = JSON.parse(text);
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('varlink: a message is not a JSON object');
      out.push(v);
    }
    if (start < chunk.length) {
      if (this.size + (chunk.length - start) > this.max) this.overflow();
      // a copy: a subarray would keep the whole chunk (up to 64 KiB) alive for a few bytes
      this.parts.push(start === 0 ? chunk : Buffer.from(chunk.subarray(start)));
      this.size += chunk.length - start;
    }
    return out;
  }
  private overflow(): never {
    this.parts = [];
    this.size = 0;
    throw new VarlinkOverflowError(this.max);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Calls METHOD on the varlink service at SOCKET. With more: every reply until the last (continues false).
 * ONREPLY sees each reply as it comes (progress of a long call). Rejects with VarlinkError on an error reply, with the socket error (ENOENT, ECONNREFUSED) when nothing listens.
 */
export function varlinkCall(
  socket: string,
  method: string,
  parameters: Record<string, unknown> = {},
  opts: { more?: boolean; timeoutMs?: number; onReply?: (parameters: Record<string, unknown>) => void } = {},
): Promise<Record<string, unknown>[]> {
  return new Promise((resolve, reject) => {
    const s = net().connect(socket);
    const dec = new VarlinkDecoder();
    const replies: Record<string, unknown>[] = [];
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      s.destroy();
      if (err) reject(err);
      else resolve(replies);
    };
    if (opts.timeoutMs) s.setTimeout(opts.timeoutMs, () => finish(new Error(`varlink: no answer from ${socket} to ${method}`)));
    s.on('error', (e) => finish(e));
    s.on('close', () => finish(new Error(`varlink: ${socket} closed the connection during ${method}`)));
    s.on('data', (chunk: Buffer) => {
      let msgs: unknown[];
      try {
        msgs = dec.push(chunk);
      } catch (e) {
        finish(e instanceof VarlinkOverflowError ? new Error(`${e.message} (from ${socket}, answering ${method})`) : (e as Error));
        return;
      }
      for (const m of msgs as VarlinkReply[]) {
        const params = m.parameters ?? {};
        if ((m.error !== undefined && typeof m.error !== 'string') || !isObject(params)) {
          finish(new Error(`varlink: ${socket} sent a malformed reply to ${method}`));
          return;
        }
        if (m.error) {
          finish(new VarlinkError(m.error, params));
          return;
        }
        replies.push(params);
        opts.onReply?.(params);
        if (!m.continues) {
          finish();
          return;
        }
      }
    });
    const call: VarlinkCall = { method, parameters };
    if (opts.more) call.more = true;
    s.write(encodeVarlink(call));
  });
}

/** What a method handler gets: the call, who is calling, and how to answer. */
export interface VarlinkContext {
  call: VarlinkCall;
  /** the connection's peer (from the accept check), when known */
  peer?: { pid: number; uid: number; gid: number };
  /** a reply that is not the last (only when call.more) */
  reply(parameters: Record<string, unknown>): void;
}

/** A method's handler returns the last reply's parameters, or throws a VarlinkError. */
export type VarlinkHandler = (parameters: Record<string, unknown>, ctx: VarlinkContext) => Record<string, unknown> | Promise<Record<string, unknown>>;

/**
 * The type of one parameter: a JSON string, boolean, number, integer (a safe integer), uint (a safe integer >= 0),
 * object or array, or an array of strings or of integers.
 */
export type VarlinkType = 'string' | 'boolean' | 'number' | 'integer' | 'uint' | 'object' | 'array' | 'string[]' | 'integer[]';

/** A parameter: its type (or the types it may have), and whether it must be there (null counts as absent). */
export type VarlinkField = VarlinkType | { type: VarlinkType | readonly VarlinkType[]; required?: boolean };

/** What a method takes, checked before its handler runs (fields not named here are passed on unchecked). */
export type VarlinkParams = Readonly<Record<string, VarlinkField>>;

/** A method with its parameters' types: a call that does not match gets InvalidParameter naming the field. */
export interface VarlinkMethod {
  params?: VarlinkParams;
  handler: VarlinkHandler;
}

export interface VarlinkServerOptions {
  /** the methods by qualified name (own properties only; nothing inherited is ever a method) */
  methods: Record<string, VarlinkHandler | VarlinkMethod> | ReadonlyMap<string, VarlinkHandler | VarlinkMethod>;
  /** checked once per connection before any call is read; a rejection closes it */
  accept?: (socket: Socket) => Promise<{ pid: number; uid: number; gid: number } | undefined>;
  /** for org.varlink.service.GetInfo */
  info?: { vendor: string; product: string; version: string; url: string };
  /** the largest message accepted (default VARLINK_MESSAGE_MAX, 16 MiB) */
  maxMessage?: number;
}

/** org.varlink.service.InvalidParameter for PARAMETER, as systemd's sd_varlink_error_invalid_parameter_name(). */
export function invalidParameter(parameter: string): VarlinkError {
  return new VarlinkError('org.varlink.service.InvalidParameter', { parameter });
}

function hasType(v: unknown, t: VarlinkType): boolean {
  switch (t) {
    case 'string':
      return typeof v === 'string';
    case 'boolean':
      return typeof v === 'boolean';
    case 'number':
      return typeof v === 'number' && Number.isFinite(v);
    case 'integer':
      return Number.isSafeInteger(v);
    case 'uint':
      return Number.isSafeInteger(v) && (v as number) >= 0;
    case 'object':
      return isObject(v);
    case 'array':
      return Array.isArray(v);
    case 'string[]':
      return Array.isArray(v) && v.every((x) => typeof x === 'string');
    case 'integer[]':
      return Array.isArray(v) && v.every((x) => Number.isSafeInteger(x));
  }
}

/** Throws InvalidParameter for the first field of P that SPEC refuses (missing when required, or of another type). */
export function checkVarlinkParams(p: Record<string, unknown>, spec: VarlinkParams): void {
  for (const name of Object.keys(spec)) {
    const f = spec[name]!;
    const { type, required } = typeof f === 'string' ? { type: f, required: false } : f;
    const v = Object.hasOwn(p, name) ? p[name] : undefined;
    if (v === undefined || v === null) {
      if (required) throw invalidParameter(name);
      continue;
    }
    const types: readonly VarlinkType[] = typeof type === 'string' ? [type] : type;
    if (!types.some((t) => hasType(v, t))) throw invalidParameter(name);
  }
}

/** calls being answered or waiting on one connection before it stops reading more (backpressure) */
const MAX_PENDING_CALLS = 64;
/** a varlink interface name (reverse domain) and method name; longer or other names are never echoed back */
const METHOD_RE = /^([A-Za-z](?:-*[A-Za-z0-9])*(?:\.[A-Za-z0-9](?:-*[A-Za-z0-9])*)+)\.([A-Z][A-Za-z0-9]*)$/;

/**
 * A varlink server; calls on one connection are answered in order. Hostile peers get what systemd's sd-varlink gives
 * them: a message over 16 MiB, or one that is not a call, drops the connection; an unknown method (whatever its
 * name, `__proto__` included) is MethodNotFound; parameters that are not an object, or fields of the wrong type,
 * are InvalidParameter. A peer that does not read its replies stops being read from.
 */
export function createVarlinkServer(opts: VarlinkServerOptions): Server {
  const methods = new Map<string, VarlinkMethod>();
  const given: Iterable<[string, VarlinkHandler | VarlinkMethod]> = opts.methods instanceof Map ? opts.methods : Object.entries(opts.methods);
  for (const [name, m] of given) methods.set(name, typeof m === 'function' ? { handler: m } : m);
  const interfaces = [...new Set([...methods.keys()].map((m) => m.slice(0, m.lastIndexOf('.'))))];
  if (!methods.has('org.varlink.service.GetInfo'))
    methods.set('org.varlink.service.GetInfo', {
      handler: () => ({ ...(opts.info ?? { vendor: '', product: '', version: '', url: '' }), interfaces: ['org.varlink.service', ...interfaces] }),
    });
  const known = new Set(['org.varlink.service', ...interfaces]);
  const max = opts.maxMessage ?? VARLINK_MESSAGE_MAX;
  return net().createServer((sock) => {
    sock.on('error', () => {});
    const dec = new VarlinkDecoder(max);
    let peer: VarlinkContext['peer'];
    let pending = 0;
    let accepted = !opts.accept;
    let queue: Promise<unknown> = Promise.resolve();
    const flow = () => {
      if (sock.destroyed) return;
      if (accepted && pending < MAX_PENDING_CALLS) sock.resume();
      else sock.pause();
    };
    const write = (m: VarlinkReply) => {
      if (sock.destroyed) return;
      let buf = encodeVarlink(m);
      if (buf.length > max) buf = encodeVarlink({ error: 'io.nspawn.Failed', parameters: { message: `the reply exceeds ${max} bytes` } });
      sock.write(buf);
      // a peer that does not read what it gets is not given more memory
      if (sock.writableLength > max) sock.destroy();
    };
    const answer = async (raw: Record<string, unknown>) => {
      if (sock.destroyed) return;
      const oneway = raw.oneway === true;
      const send = (m: VarlinkReply) => {
        if (!oneway) write(m);
      };
      const method = raw.method as string;
      const m = methods.get(method);
      if (!m) {
        const named = METHOD_RE.exec(method);
        if (named && !known.has(named[1]!)) send({ error: 'org.varlink.service.InterfaceNotFound', parameters: { interface: named[1]! } });
        else send({ error: 'org.varlink.service.MethodNotFound', parameters: named || method.length <= 255 ? { method } : {} });
        return;
      }
      const params = raw.parameters ?? {};
      try {
        if (!isObject(params)) throw invalidParameter('parameters');
        if (m.params) checkVarlinkParams(params, m.params);
        const call: VarlinkCall = { method, parameters: params };
        if (raw.more === true) call.more = true;
        if (oneway) call.oneway = true;
        const ctx: VarlinkContext = {
          call,
          reply: (p) => send({ parameters: p, continues: true }),
          ...(peer ? { peer } : {}),
        };
        const last = await m.handler(params, ctx);
        send({ parameters: last });
      } catch (e) {
        if (e instanceof VarlinkError) send({ error: e.error, parameters: e.parameters });
        else send({ error: 'io.nspawn.Failed', parameters: { message: (e as Error).message } });
      }
    };
    sock.on('data', (chunk: Buffer) => {
      let msgs: unknown[];
      try {
        msgs = dec.push(chunk);
      } catch {
        sock.destroy();
        return;
      }
      for (const raw of msgs as Array<Record<string, unknown>>) {
        // not a call (sd-varlink: "goto invalid"): no answer is possible, the connection goes
        if (
          typeof raw.method !== 'string' ||
          (raw.more !== undefined && typeof raw.more !== 'boolean') ||
          (raw.oneway !== undefined && typeof raw.oneway !== 'boolean') ||
          (raw.more === true && raw.oneway === true)
        ) {
          sock.destroy();
          return;
        }
        pending++;
        queue = queue
          .then(() => answer(raw))
          .catch(() => sock.destroy())
          .finally(() => {
            pending--;
            flow();
          });
      }
      flow();
    });
    // nothing is read from a peer before its credentials are checked
    if (opts.accept) {
      sock.pause();
      opts.accept(sock).then(
        (p) => {
          peer = p;
          accepted = true;
          flow();
        },
        () => sock.destroy(),
      );
    }
  });
}
