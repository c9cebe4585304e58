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

export function encodeVarlink(msg: VarlinkCall | VarlinkReply): Buffer {
  return Buffer.from(`${JSON.stringify(msg)}\0`, 'utf8');
}

/** Splits a byte stream into messages; throws on a message that is not a JSON object. */
export class VarlinkDecoder {
  private parts: Buffer[] = [];
  push(chunk: Buffer): unknown[] {
    const out: unknown[] = [];
    let start = 0;
    for (let i = chunk.indexOf(0); i >= 0; i = chunk.indexOf(0, start)) {
      this.parts.push(chunk.subarray(start, i));
      const text = Buffer.concat(this.parts).toString('utf8');
      this.parts = [];
      start = i + 1;
      const v: unknown = JSON.parse(text);
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('varlink: a message is not a JSON object');
      out.push(v);
    }
    if (start < chunk.length) this.parts.push(chunk.subarray(start));
    return out;
  }
}

/**
 * Calls METHOD on the varlink service at SOCKET. With more: every reply until the last (continues false).
 * Rejects with VarlinkError on an error reply, with the socket error (ENOENT, ECONNREFUSED) when nothing listens.
 */
export function varlinkCall(
  socket: string,
  method: string,
  parameters: Record<string, unknown> = {},
  opts: { more?: boolean; timeoutMs?: number } = {},
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
        finish(e as Error);
        return;
      }
      for (const m of msgs as VarlinkReply[]) {
        if (m.error) {
          finish(new VarlinkError(m.error, m.parameters ?? {}));
          return;
        }
        replies.push(m.parameters ?? {});
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

export interface VarlinkServerOptions {
  methods: Record<string, VarlinkHandler>;
  /** checked once per connection before any call is read; a rejection closes it */
  accept?: (socket: Socket) => Promise<{ pid: number; uid: number; gid: number } | undefined>;
  /** for org.varlink.service.GetInfo */
  info?: { vendor: string; product: string; version: string; url: string };
}

/** A varlink server; calls on one connection are answered in order. */
export function createVarlinkServer(opts: VarlinkServerOptions): Server {
  const interfaces = [...new Set(Object.keys(opts.methods).map((m) => m.slice(0, m.lastIndexOf('.'))))];
  const methods: Record<string, VarlinkHandler> = {
    'org.varlink.service.GetInfo': () => ({ ...(opts.info ?? { vendor: '', product: '', version: '', url: '' }), interfaces: ['org.varlink.service', ...interfaces] }),
    ...opts.methods,
  };
  return net().createServer((sock) => {
    sock.on('error', () => {});
    const dec = new VarlinkDecoder();
    let queue = Promise.resolve();
    let peer: VarlinkContext['peer'];
    const accepted = opts.accept ? opts.accept(sock).then((p) => (peer = p)) : Promise.resolve(undefined);
    queue = accepted.then(
      () => undefined,
      () => {
        sock.destroy();
      },
    );
    sock.on('data', (chunk: Buffer) => {
      let msgs: unknown[];
      try {
        msgs = dec.push(chunk);
      } catch {
        sock.destroy();
        return;
      }
      for (const raw of msgs) {
        const call = raw as VarlinkCall;
        queue = queue.then(async () => {
          if (sock.destroyed) return;
          const send = (m: VarlinkReply) => {
            if (!call.oneway && !sock.destroyed) sock.write(encodeVarlink(m));
          };
          const h = typeof call.method === 'string' ? methods[call.method] : undefined;
          if (!h) {
            const iface = String(call.method).slice(0, String(call.method).lastIndexOf('.'));
            send(
              interfaces.includes(iface) || iface === 'org.varlink.service'
                ? { error: 'org.varlink.service.MethodNotFound', parameters: { method: call.method } }
                : { error: 'org.varlink.service.InterfaceNotFound', parameters: { interface: iface } },
            );
            return;
          }
          try {
            const ctx: VarlinkContext = {
              call,
              reply: (p) => send({ parameters: p, continues: true }),
              ...(peer ? { peer } : {}),
            };
            const last = await h(call.parameters ?? {}, ctx);
            send({ parameters: last });
          } catch (e) {
            if (e instanceof VarlinkError) send({ error: e.error, parameters: e.parameters });
            else send({ error: 'io.nspawn.Failed', parameters: { message: (e as Error).message } });
          }
        });
      }
    });
  });
}
