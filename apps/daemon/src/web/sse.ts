/**
 * Server-sent event streams: at most MAX open at once (the next one gets 503), one timer for the keep-alive of all
 * of them, and a client that does not read what it is sent (more than WRITE_MAX queued) is dropped rather than
 * given nspawnd's memory.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export const MAX_STREAMS = 512;
export const WRITE_MAX = 1024 * 1024;
export const KEEPALIVE_MS = 20000;

export interface EventStream {
  send(event: string, data: unknown): void;
  /** called once when the stream ends (the client went, or close()) */
  onClose(fn: () => void): void;
  close(): void;
}

export class EventStreams {
  private readonly open = new Set<ServerResponse>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly max = MAX_STREAMS,
    private readonly keepaliveMs = KEEPALIVE_MS,
  ) {}

  get size(): number {
    return this.open.size;
  }

  /** Answers REQ with an event stream, or with 503 when MAX are open (then undefined). */
  accept(req: IncomingMessage, res: ServerResponse, headers: Record<string, string>): EventStream | undefined {
    if (this.open.size >= this.max) {
      res.writeHead(503, { ...headers, 'Content-Type': 'text/plain; charset=utf-8', 'Retry-After': '10' });
      res.end(`Too many open event streams (${this.max}): close some pages of the view.\n`);
      return undefined;
    }
    res.writeHead(200, { ...headers, 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no' });
    // the browser's reconnection delay after a drop
    res.write('retry: 3000\n\n');
    req.socket.setNoDelay(true);
    req.socket.setTimeout(0);
    this.open.add(res);
    const closers: Array<() => void> = [];
    let closed = false;
    const end = () => {
      if (closed) return;
      closed = true;
      this.open.delete(res);
      if (this.open.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
      for (const c of closers) c();
    };
    res.on('close', end);
    if (!this.timer) {
      this.timer = setInterval(() => {
        for (const r of this.open) r.write(': keep-alive\n\n');
      }, this.keepaliveMs);
      this.timer.unref();
    }
    return {
      send: (event, data) => {
        if (closed) return;
        res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
        if (res.writableLength > WRITE_MAX) res.destroy();
      },
      onClose: (fn) => void closers.push(fn),
      close: () => {
        res.end();
        end();
      },
    };
  }

  closeAll(): void {
    for (const r of [...this.open]) r.destroy();
    this.open.clear();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
