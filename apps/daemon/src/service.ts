/**
 * nspawnd's sockets: io.systemd.Machine and io.systemd.MachineImage in $NSPAWND_RUNTIME_DIR, root only (0600 in a
 * 0700 directory, and each connection's peer credentials checked), one varlink server answering both. A socket
 * another nspawnd answers on is not taken over; a stale one is replaced.
 */
import { chmodSync, existsSync, unlinkSync } from 'node:fs';
import type { Server, Socket } from 'node:net';
import { peerCredentialsReader, type PeerCredentialsReader } from '@nspawn/assembly';
import { createVarlinkServer, varlinkCall, type VarlinkMethod } from '@nspawn/runtime';
import type { Peer } from './admission.js';

export const SERVICE_INFO = { vendor: 'nspawn', product: 'nspawnd', version: '0.1.0', url: 'https://github.com/nspawn' };

/**
 * SO_PEERCRED: Node has no API for it, so the runtime's helper reads it (@nspawn/assembly's peerCredentialsReader():
 * one helper beside us for all connections, ~0.1 ms each, and one of its own for a connection it could not read).
 * Only root (UID 0) may talk.
 */
export class PeerCredentials {
  private readonly reader: PeerCredentialsReader = peerCredentialsReader();

  constructor(private readonly log: (line: string) => void) {}

  /** The peer of SOCK, or a rejection (unknown, or not root: then the connection is refused, and logged). */
  async check(sock: Socket): Promise<Peer> {
    const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (typeof fd !== 'number' || fd < 0) throw new Error('no fd');
    const c = await this.reader.read(fd);
    if (!c) throw new Error('peer credentials unknown');
    if (c.uid !== 0) {
      this.log(`refused a connection from UID ${c.uid} (PID ${c.pid})`);
      throw new Error('not root');
    }
    return { pid: c.pid, uid: c.uid, gid: c.gid };
  }

  close(): void {
    this.reader.close();
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
