/**
 * nspawnd's sockets: io.systemd.Machine and io.systemd.MachineImage in $NSPAWND_RUNTIME_DIR, root only (0600 in a
 * 0700 directory, and each connection's peer credentials checked), one varlink server answering both. A socket
 * another nspawnd answers on is not taken over; a stale one is replaced.
 */
import type { ResultPromise } from 'execa';
import { chmodSync, existsSync, unlinkSync } from 'node:fs';
import type { Server, Socket } from 'node:net';
import { createVarlinkServer, helperPath, varlinkCall, type VarlinkMethod } from '@nspawn/runtime';
import type { Peer } from './admission.js';

export const SERVICE_INFO = { vendor: 'nspawn', product: 'nspawnd', version: '0.1.0', url: 'https://github.com/nspawn' };

type Subprocess = ResultPromise<{ buffer: false; reject: false }>;

let execa: typeof import('execa').execa | undefined;

/**
 * Starts the helper with ARGS through execa as node's spawn() would: no buffering, never rejecting, not killed when we
 * exit, no SIGKILL after a kill(). execa is loaded at the first connection, not at nspawnd's start.
 */
async function helper(args: string[], stdin: 'pipe' | number): Promise<{ proc: Subprocess }> {
  execa ??= (await import('execa')).execa;
  const options = { stdio: [stdin, 'pipe', 'ignore'], buffer: false, reject: false, cleanup: false, forceKillAfterDelay: false } as const;
  // wrapped: a subprocess is a promise of its end, which an await would wait for
  return { proc: execa(helperPath(), args, options as unknown as { buffer: false; reject: false }) };
}

/**
 * SO_PEERCRED: Node has no API for it, so the runtime's helper reads it. One `nspawn-helper peercred-server`
 * runs beside us: we write the connection's fd number, it takes a copy of that fd from us (pidfd_getfd) and
 * answers the peer's PID, UID and GID (~0.1 ms; a process per connection would cost ~5 ms here). Should it be
 * gone, `nspawn-helper peercred` with the connection as its stdin does the same once. Only root (UID 0) may talk.
 */
export class PeerCredentials {
  private server: { proc: Subprocess; waiting: Array<(line: string) => void>; buf: string } | undefined;

  constructor(private readonly log: (line: string) => void) {}

  private async ask(fd: number): Promise<string> {
    let s = this.server;
    if (!s || s.proc.nodeChildProcess.exitCode !== null || s.proc.nodeChildProcess.signalCode !== null) {
      const { proc } = await helper(['peercred-server', String(process.pid)], 'pipe');
      if (this.server && this.server.proc.nodeChildProcess.exitCode === null && this.server.proc.nodeChildProcess.signalCode === null) {
        // another connection started one while we loaded execa: use that, end ours
        proc.kill();
        return this.ask(fd);
      }
      s = { proc, waiting: [], buf: '' };
      const srv = s;
      proc.stdin!.on('error', () => {});
      proc.stdout!.on('data', (d: Buffer) => {
        srv.buf += d.toString();
        let i;
        while ((i = srv.buf.indexOf('\n')) >= 0) {
          const line = srv.buf.slice(0, i);
          srv.buf = srv.buf.slice(i + 1);
          srv.waiting.shift()?.(line);
        }
      });
      // never rejects (reject: false): resolves when it has ended, or failed to start
      void proc.then(() => {
        for (const w of srv.waiting.splice(0)) w('-');
        if (this.server === srv) this.server = undefined;
      });
      proc.nodeChildProcess.unref();
      (proc.stdout as unknown as { unref?: () => void }).unref?.();
      (proc.stdin as unknown as { unref?: () => void }).unref?.();
      this.server = s;
    }
    const srv = s;
    return new Promise((resolve) => {
      srv.waiting.push(resolve);
      srv.proc.stdin!.write(`${fd}\n`);
    });
  }

  private async askOnce(fd: number): Promise<string> {
    const { proc: c } = await helper(['peercred'], fd);
    return new Promise((resolve) => {
      let out = '';
      c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      void c.then(() => resolve(out.trim() || '-'));
    });
  }

  /** The peer of SOCK, or a rejection (unknown, or not root: then the connection is refused, and logged). */
  async check(sock: Socket): Promise<Peer> {
    const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (typeof fd !== 'number' || fd < 0) throw new Error('no fd');
    let line = await this.ask(fd);
    if (line === '-' && !sock.destroyed) line = await this.askOnce(fd);
    const [pid, uid, gid] = line.trim().split(' ').map(Number);
    if (uid === undefined || Number.isNaN(uid) || line === '-') throw new Error('peer credentials unknown');
    if (uid !== 0) {
      this.log(`refused a connection from UID ${uid} (PID ${pid})`);
      throw new Error('not root');
    }
    return { pid: pid!, uid, gid: gid! };
  }

  close(): void {
    this.server?.proc.kill();
  }
}

/**
 * Listens on each of PATHS with one varlink server for METHODS (root only: the socket 0600, each peer checked).
 * Throws when another nspawnd answers on one of them.
 */
export async function listen(paths: string[], methods: Record<string, VarlinkMethod>, creds: PeerCredentials): Promise<Server[]> {
  const servers: Server[] = [];
  for (const path of paths) {
    if (existsSync(path)) {
      // another nspawnd answering there? then we are not needed; a stale socket is removed
      const alive = await varlinkCall(path, 'org.varlink.service.GetInfo', {}, { timeoutMs: 1000 }).then(
        () => true,
        () => false,
      );
      if (alive) {
        await closeServers(servers, []);
        throw new Error(`another nspawnd is listening on ${path}`);
      }
      unlinkSync(path);
    }
    const server = createVarlinkServer({ methods, accept: (sock) => creds.check(sock), info: SERVICE_INFO });
    // root only: the socket is 0600 in a 0700 directory, and each peer's credentials are checked
    const old = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(path, () => resolve());
      });
    } finally {
      process.umask(old);
    }
    chmodSync(path, 0o600);
    servers.push(server);
  }
  return servers;
}

/** Closes SERVERS and removes their sockets (PATHS). */
export async function closeServers(servers: Server[], paths: string[]): Promise<void> {
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  for (const p of paths) {
    try {
      unlinkSync(p);
    } catch {
      // gone
    }
  }
}
