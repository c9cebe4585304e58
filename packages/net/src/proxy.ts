/**
 * Forwarded ports on the host's IPv6 addresses (::1 included): a userspace relay in the nspawn process, since
 * the kernel cannot DNAT from ::1 (IPv4's 127.0.0.0/8 is DNATed by nft with route_localnet on our link). TCP
 * connections and UDP datagrams to [::]:HOSTPORT go to the container's IPv4 address and port.
 */
import { createServer, connect, type Server } from 'node:net';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import type { PortForward } from './nft.js';

export interface PortProxy {
  close(): Promise<void>;
}

export async function startIpv6Proxy(ports: PortForward[], onError: (err: Error) => void = () => {}): Promise<PortProxy> {
  const servers: Server[] = [];
  const udps: UdpSocket[] = [];
  const closeAll = async () => {
    await Promise.all(servers.map((s) => new Promise<void>((res) => s.close(() => res()))));
    for (const u of udps) {
      try {
        u.close();
      } catch {
        /* closed */
      }
    }
  };
  try {
    for (const p of ports) {
      if (p.protocol === 'tcp') {
        // half-open both ways: a client that shuts down its sending side still gets the whole answer
        const srv = createServer({ allowHalfOpen: true }, (c) => {
          const up = connect({ host: p.address, port: p.containerPort, allowHalfOpen: true });
          c.pipe(up).pipe(c);
          const end = () => {
            c.destroy();
            up.destroy();
          };
          c.on('error', end);
          up.on('error', end);
          c.on('close', end);
          up.on('close', end);
        });
        srv.on('error', (e) => onError(e));
        await new Promise<void>((res, rej) => {
          srv.once('error', rej);
          srv.listen({ host: '::', port: p.hostPort, ipv6Only: true }, () => {
            srv.off('error', rej);
            res();
          });
        });
        servers.push(srv);
      } else {
        const s = createSocket({ type: 'udp6', ipv6Only: true });
        const peers = new Map<string, UdpSocket>();
        s.on('message', (msg, rinfo) => {
          const key = `${rinfo.address}|${rinfo.port}`;
          let up = peers.get(key);
          if (!up) {
            up = createSocket('udp4');
            up.on('message', (reply) => s.send(reply, rinfo.port, rinfo.address));
            up.on('error', () => {});
            peers.set(key, up);
            udps.push(up);
          }
          up.send(msg, p.containerPort, p.address);
        });
        s.on('error', (e) => onError(e));
        await new Promise<void>((res, rej) => {
          s.once('error', rej);
          s.bind({ address: '::', port: p.hostPort }, () => {
            s.off('error', rej);
            res();
          });
        });
        udps.push(s);
      }
    }
  } catch (err) {
    await closeAll();
    throw err;
  }
  for (const s of servers) s.unref();
  for (const u of udps) u.unref();
  return { close: closeAll };
}
