/**
 * A machine's console log for the view: its tail (a bounded read from the end: a log of any size costs at most
 * TAIL_BYTES), then what is written to it, followed by one poller per log however many pages watch it. Rotation
 * (copytruncate, or a new file) starts again from the top; a burst larger than CHUNK_MAX between two polls is
 * skipped to its last TAIL_BYTES, said so in the stream.
 */
import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';

export const TAIL_BYTES = 64 * 1024;
export const CHUNK_MAX = 256 * 1024;
export const POLL_MS = 500;

/** The last MAX bytes of the file at PATH, from a line start; its size; undefined when there is no file. */
export function tailFile(path: string, max = TAIL_BYTES): { text: string; end: number; skipped: number } | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    return tailFd(fd, max);
  } finally {
    closeSync(fd);
  }
}

function tailFd(fd: number, max: number, end = fstatSync(fd).size): { text: string; end: number; skipped: number } {
  const start = Math.max(0, end - max);
  const buf = Buffer.alloc(end - start);
  let got = 0;
  while (got < buf.length) {
    const n = readSync(fd, buf, got, buf.length - got, start + got);
    if (n <= 0) break;
    got += n;
  }
  let b = buf.subarray(0, got);
  let skipped = start;
  if (start > 0) {
    // from the first whole line
    const nl = b.indexOf(0x0a);
    if (nl >= 0) {
      b = b.subarray(nl + 1);
      skipped += nl + 1;
    }
  }
  return { text: b.toString('utf8'), end: start + got, skipped };
}

/** What a watcher of a log gets: text appended, or the log started anew (rotated) with this text. */
export type LogEvent = { kind: 'append'; text: string } | { kind: 'reset'; text: string; skipped: number };

class Follower {
  readonly listeners = new Set<(e: LogEvent) => void>();
  private fd: number | undefined;
  private ino = -1;
  private pos = 0;
  private decoder = new StringDecoder('utf8');

  constructor(private readonly path: string) {
    // where the tail each new watcher gets ends: from here on, what is appended
    try {
      const fd = openSync(path, 'r');
      const st = fstatSync(fd);
      this.fd = fd;
      this.ino = st.ino;
      this.pos = st.size;
    } catch {
      // not there yet: the first poll that finds it reads it from the top
    }
  }

  private emit(e: LogEvent): void {
    for (const l of this.listeners) l(e);
  }

  private reopen(): boolean {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    try {
      this.fd = openSync(this.path, 'r');
      this.ino = fstatSync(this.fd).ino;
      return true;
    } catch {
      return false;
    }
  }

  poll(): void {
    let size: number;
    try {
      const st = statSync(this.path);
      if (this.fd === undefined || st.ino !== this.ino) {
        if (!this.reopen()) return;
        this.pos = 0;
        this.decoder = new StringDecoder('utf8');
        this.emit({ kind: 'reset', text: '', skipped: 0 });
      }
      size = fstatSync(this.fd!).size;
    } catch {
      return;
    }
    if (size < this.pos) {
      // truncated (copytruncate): the new content starts at 0
      this.pos = 0;
      this.decoder = new StringDecoder('utf8');
      this.emit({ kind: 'reset', text: '', skipped: 0 });
    }
    if (size === this.pos) return;
    if (size - this.pos > CHUNK_MAX) {
      // more than a poll should carry: the last TAIL_BYTES of it, from a line start
      const t = tailFd(this.fd!, TAIL_BYTES);
      this.pos = t.end;
      this.decoder = new StringDecoder('utf8');
      this.emit({ kind: 'reset', text: t.text, skipped: t.skipped });
      return;
    }
    // a buffer for this read only: a log nobody writes to holds no memory
    const buf = Buffer.allocUnsafe(size - this.pos);
    const n = readSync(this.fd!, buf, 0, buf.length, this.pos);
    if (n <= 0) return;
    this.pos += n;
    const text = this.decoder.write(buf.subarray(0, n));
    if (text) this.emit({ kind: 'append', text });
  }

  /** The tail of what was read so far (what a new watcher is shown before the appends). */
  tail(max: number): { text: string; skipped: number } | undefined {
    if (this.fd === undefined) return undefined;
    const t = tailFd(this.fd, max, this.pos);
    return { text: t.text, skipped: t.skipped };
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/** The logs being watched: one follower per file, polled every POLL_MS while anyone watches it. */
export class LogHub {
  private readonly followers = new Map<string, Follower>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly pollMs = POLL_MS) {}

  /**
   * The tail of PATH (at most MAX bytes, undefined when there is no such file yet), and FN called with what is
   * written to it from there on; stop() ends that.
   */
  watch(path: string, fn: (e: LogEvent) => void, max = TAIL_BYTES): { tail: { text: string; skipped: number } | undefined; stop: () => void } {
    let f = this.followers.get(path);
    if (!f) this.followers.set(path, (f = new Follower(path)));
    else f.poll(); // the others get what is new; the tail ends where they are
    const tail = f.tail(max);
    f.listeners.add(fn);
    if (!this.timer) {
      this.timer = setInterval(() => {
        for (const x of this.followers.values()) x.poll();
      }, this.pollMs);
      this.timer.unref();
    }
    const follower = f;
    const stop = () => {
      follower.listeners.delete(fn);
      if (follower.listeners.size === 0 && this.followers.get(path) === follower) {
        follower.close();
        this.followers.delete(path);
      }
      if (this.followers.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    };
    return { tail, stop };
  }

  get watched(): number {
    return this.followers.size;
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const f of this.followers.values()) f.close();
    this.followers.clear();
  }
}
