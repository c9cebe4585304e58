/**
 * SO_PEERCRED of a connected unix socket: who is on the other end (PID, UID, GID), which Node cannot read. The native
 * helper reads it: once per socket (peerCredentials()), or one helper process beside us for many connections
 * (peerCredentialsReader(): it takes a copy of our descriptor with pidfd_getfd(2), about 0.1 ms a connection where a
 * process per connection costs 5 ms). nspawnd checks its varlink callers this way.
 */
import type { ChildProcess } from 'node:child_process';
import { helperPath } from './helper-path.js';

export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

/** "PID UID GID" of the helper, or undefined */
function parse(line: string): PeerCredentials | undefined {
  const m = /^(\d+) (\d+) (\d+)$/.exec(line.trim());
  return m ? { pid: Number(m[1]), uid: Number(m[2]), gid: Number(m[3]) } : undefined;
}

/** The peer of the connected unix socket FD (ours), through a helper process of its own; undefined when unknown. */
export function peerCredentials(fd: number, opts: { helper?: string } = {}): Promise<PeerCredentials | undefined> {
  const { spawn } = process.getBuiltinModule('node:child_process');
  return new Promise((resolve) => {
    let c: ChildProcess;
    try {
      c = spawn(opts.helper ?? helperPath(), ['peercred'], { stdio: [fd, 'pipe', 'ignore'], env: {}, argv0: 'nspawn-helper' });
    } catch {
      resolve(undefined);
      return;
    }
    let out = '';
    c.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    c.on('error', () => resolve(undefined));
    c.on('close', () => resolve(parse(out)));
  });
}

/** Many connections' peers, by one helper process (see peerCredentialsReader()). */
export interface PeerCredentialsReader {
  /** the peer of our connected unix socket FD; undefined when unknown */
  read(fd: number): Promise<PeerCredentials | undefined>;
  /** ends the helper process (it ends with us anyway) */
  close(): void;
}

/**
 * A reader for the sockets of this process: one helper beside us (started on first use, again when it is gone; it
 * does not keep the event loop alive and dies with us), and a helper of their own for a connection it could not read.
 */
export function peerCredentialsReader(opts: { helper?: string } = {}): PeerCredentialsReader {
  let server: { proc: ChildProcess; waiting: Array<(line: string) => void>; buf: string } | undefined;
  const start = () => {
    const { spawn } = process.getBuiltinModule('node:child_process');
    const proc = spawn(opts.helper ?? helperPath(), ['peercred-server', String(process.pid)], { stdio: ['pipe', 'pipe', 'ignore'], env: {}, argv0: 'nspawn-helper' });
    const s = { proc, waiting: [] as Array<(line: string) => void>, buf: '' };
    proc.on('error', () => {});
    proc.stdin!.on('error', () => {});
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
      s.buf += d;
      let i;
      while ((i = s.buf.indexOf('\n')) >= 0) {
        const line = s.buf.slice(0, i);
        s.buf = s.buf.slice(i + 1);
        s.waiting.shift()?.(line);
      }
    });
    proc.on('close', () => {
      for (const w of s.waiting.splice(0)) w('-');
      if (server === s) server = undefined;
    });
    proc.unref();
    (proc.stdout as unknown as { unref?: () => void }).unref?.();
    (proc.stdin as unknown as { unref?: () => void }).unref?.();
    return s;
  };
  return {
    async read(fd) {
      if (!Number.isInteger(fd) || fd < 0) return undefined;
      if (!server || server.proc.exitCode !== null || server.proc.signalCode !== null) server = start();
      const s = server;
      const line = await new Promise<string>((resolve) => {
        s.waiting.push(resolve);
        s.proc.stdin!.write(`${fd}\n`);
      });
      return parse(line) ?? (await peerCredentials(fd, opts));
    },
    close() {
      server?.proc.kill();
      server = undefined;
    },
  };
}
