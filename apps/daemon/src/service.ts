/**
 * nspawnd's sockets: io.systemd.Machine and io.systemd.MachineImage in $NSPAWND_RUNTIME_DIR, one varlink server
 * answering both. As machined's: anyone may connect (0666 in a 0755 directory) and read (the methods in READ_ONLY:
 * what `machinectl list`, `status`, `show`, `list-images` and `image-status` ask), every other method is root's:
 * each connection's peer credentials are read (SO_PEERCRED) and a call from another UID is PermissionDenied. A
 * socket another nspawnd answers on is not taken over; a stale one is replaced.
 */
import { chmodSync, existsSync, unlinkSync } from 'node:fs';
import type { Server, Socket } from 'node:net';
import { peerCredentialsReader, type PeerCredentialsReader } from '@nspawn/assembly';
import { createVarlinkServer, varlinkCall, VarlinkError, type VarlinkMethod } from '@nspawn/runtime';
import type { Peer } from './admission.js';

export const SERVICE_INFO = { vendor: 'nspawn', product: 'nspawnd', version: '0.1.0', url: 'https://github.com/nspawn' };

/**
 * SO_PEERCRED: Node has no API for it, so the runtime's helper reads it (@nspawn/assembly's peerCredentialsReader():
 * one helper beside us for all connections, ~0.1 ms each, and one of its own for a connection it could not read).
 * A connection whose credentials cannot be read is refused; any UID may talk, guard() decides what it may call.
 */
export class PeerCredentials {
  private readonly reader: PeerCredentialsReader = peerCredentialsReader();

  constructor(private readonly log: (line: string) => void) {}

  /** The peer of SOCK, or a rejection (its credentials unknown: then the connection is refused, and logged). */
  async check(sock: Socket): Promise<Peer> {
    const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (typeof fd !== 'number' || fd < 0) throw new Error('no fd');
    const c = await this.reader.read(fd);
    if (!c) {
      this.log('refused a connection whose peer credentials could not be read');
      throw new Error('peer credentials unknown');
    }
    return { pid: c.pid, uid: c.uid, gid: c.gid };
  }

  close(): void {
    this.reader.close();
  }
}

/**
 * What any user may call (machined lets anyone read its machines and images, polkit guards the rest): listing and
 * looking up machines and images. Everything else is root's.
 */
export const READ_ONLY: ReadonlySet<string> = new Set(['org.varlink.service.GetInfo', 'io.systemd.Machine.List', 'io.systemd.MachineImage.List', 'io.nspawn.Transfer.List']);

/**
 * METHODS as the sockets serve them: a method not in READ_ONLY called by a UID other than 0 (or by a peer nspawnd
 * does not know) is org.varlink.service.PermissionDenied, as sd-varlink answers, and logged.
 */
export function guard(methods: Record<string, VarlinkMethod>, log: (line: string) => void): Record<string, VarlinkMethod> {
  const out: Record<string, VarlinkMethod> = {};
  for (const [name, m] of Object.entries(methods)) {
    out[name] = READ_ONLY.has(name)
      ? m
      : {
          ...m,
          handler: (p, ctx) => {
            if (ctx.peer?.uid !== 0) {
              log(`refused ${name} to UID ${ctx.peer?.uid ?? '?'} (PID ${ctx.peer?.pid ?? '?'})`);
              throw new VarlinkError('org.varlink.service.PermissionDenied', { message: `${name} needs root` });
            }
            return m.handler(p, ctx);
          },
        };
  }
  return out;
}

/**
 * Listens on each of PATHS with one varlink server for METHODS (the socket 0666: guard() them first; each peer's
 * credentials read). Throws when another nspawnd answers on one of them.
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
    // anyone may connect (as to machined's socket): guard() decides what each peer may call
    const old = process.umask(0o111);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(path, () => resolve());
      });
    } finally {
      process.umask(old);
    }
    chmodSync(path, 0o666);
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
