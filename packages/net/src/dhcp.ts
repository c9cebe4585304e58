/**
 * A minimal DHCPv4 server for containers that run their own DHCP client (systemd-networkd in a booted OS,
 * busybox udhcpc): it answers only the MAC addresses it is given, with the address nspawn already gave that
 * container, so the container ends up with the same address either way. One UDP socket on 0.0.0.0:67 with
 * SO_REUSEADDR (every nspawn instance has its own and sees every broadcast; each answers its own container).
 * Replies are unicast to the leased address; a permanent neighbour entry on our link (the container's MAC is
 * known) lets them reach a client that has no address yet. Nothing is sent to a MAC we were not given.
 */
import { createSocket, type Socket } from 'node:dgram';
import { ip4ToInt, intToIp4 } from './pool.js';

export interface DhcpLease {
  /** the client's MAC, aa:bb:cc:dd:ee:ff */
  mac: string;
  address: string;
}

export interface DhcpServerOptions {
  /** our address on the container's link: server identifier and router */
  serverAddress: string;
  prefixLength: number;
  leases: DhcpLease[];
  /** seconds (default 3600) */
  leaseTime?: number;
  dns?: string[];
  /** a bound socket to use instead of binding 0.0.0.0:67 (tests) */
  socket?: Socket;
  port?: number;
  clientPort?: number;
}

export interface DhcpServer {
  close(): void;
  /** how many replies were sent (for tests and logs) */
  readonly replies: number;
}

const MAGIC = 0x63825363;
export const DHCP = { DISCOVER: 1, OFFER: 2, REQUEST: 3, DECLINE: 4, ACK: 5, NAK: 6, RELEASE: 7, INFORM: 8 } as const;

export interface DhcpMessage {
  op: number;
  xid: number;
  flags: number;
  ciaddr: string;
  yiaddr: string;
  chaddr: string;
  type?: number;
  requested?: string;
  serverId?: string;
}

export function parseDhcp(b: Buffer): DhcpMessage | undefined {
  if (b.length < 240 || b[1] !== 1 || b[2] !== 6 || b.readUInt32BE(236) !== MAGIC) return undefined;
  const m: DhcpMessage = {
    op: b[0]!,
    xid: b.readUInt32BE(4),
    flags: b.readUInt16BE(10),
    ciaddr: intToIp4(b.readUInt32BE(12)),
    yiaddr: intToIp4(b.readUInt32BE(16)),
    chaddr: [...b.subarray(28, 34)].map((x) => x.toString(16).padStart(2, '0')).join(':'),
  };
  for (let o = 240; o < b.length; ) {
    const code = b[o]!;
    if (code === 255) break;
    if (code === 0) {
      o++;
      continue;
    }
    const len = b[o + 1] ?? 0;
    const v = b.subarray(o + 2, o + 2 + len);
    if (code === 53 && len >= 1) m.type = v[0]!;
    if (code === 50 && len === 4) m.requested = intToIp4(v.readUInt32BE(0));
    if (code === 54 && len === 4) m.serverId = intToIp4(v.readUInt32BE(0));
    o += 2 + len;
  }
  return m;
}

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};
const opt = (code: number, v: Buffer) => Buffer.concat([Buffer.from([code, v.length]), v]);

export function buildReply(req: DhcpMessage, type: number, o: DhcpServerOptions, yiaddr: string): Buffer {
  const h = Buffer.alloc(240);
  h[0] = 2;
  h[1] = 1;
  h[2] = 6;
  h.writeUInt32BE(req.xid, 4);
  h.writeUInt16BE(req.flags, 10);
  h.writeUInt32BE(ip4ToInt(req.ciaddr), 12);
  h.writeUInt32BE(type === DHCP.NAK ? 0 : ip4ToInt(yiaddr), 16);
  h.writeUInt32BE(ip4ToInt(o.serverAddress), 20);
  Buffer.from(req.chaddr.replaceAll(':', ''), 'hex').copy(h, 28);
  h.writeUInt32BE(MAGIC, 236);
  const mask = o.prefixLength === 0 ? 0 : (~0 << (32 - o.prefixLength)) >>> 0;
  const opts = [opt(53, Buffer.from([type])), opt(54, u32(ip4ToInt(o.serverAddress)))];
  if (type !== DHCP.NAK) {
    if (type !== DHCP.ACK || req.type !== DHCP.INFORM) opts.push(opt(51, u32(o.leaseTime ?? 3600)));
    opts.push(opt(1, u32(mask)), opt(3, u32(ip4ToInt(o.serverAddress))));
    opts.push(opt(28, u32((ip4ToInt(o.serverAddress) | ~mask) >>> 0)));
    if (o.dns?.length) opts.push(opt(6, Buffer.concat(o.dns.map((d) => u32(ip4ToInt(d))))));
  }
  return Buffer.concat([h, ...opts, Buffer.from([255])]);
}

/** what to answer to a request, or undefined (not ours, or nothing to say) */
export function answer(req: DhcpMessage, o: DhcpServerOptions): { type: number; yiaddr: string } | undefined {
  if (req.op !== 1) return undefined;
  const lease = o.leases.find((l) => l.mac === req.chaddr);
  if (!lease) return undefined;
  switch (req.type) {
    case DHCP.DISCOVER:
      return { type: DHCP.OFFER, yiaddr: lease.address };
    case DHCP.REQUEST: {
      if (req.serverId !== undefined && req.serverId !== o.serverAddress) return undefined; // chose another server
      const wanted = req.requested ?? (req.ciaddr !== '0.0.0.0' ? req.ciaddr : undefined);
      return wanted === undefined || wanted === lease.address ? { type: DHCP.ACK, yiaddr: lease.address } : { type: DHCP.NAK, yiaddr: '0.0.0.0' };
    }
    case DHCP.INFORM:
      return { type: DHCP.ACK, yiaddr: '0.0.0.0' };
    default:
      return undefined;
  }
}

export async function startDhcpServer(o: DhcpServerOptions): Promise<DhcpServer> {
  let sock = o.socket;
  if (!sock) {
    sock = createSocket({ type: 'udp4', reuseAddr: true });
    const s = sock;
    await new Promise<void>((res, rej) => {
      s.once('error', rej);
      s.bind({ address: '0.0.0.0', port: o.port ?? 67 }, () => {
        s.off('error', rej);
        res();
      });
    });
  }
  const s = sock;
  let replies = 0;
  s.on('error', () => {});
  s.on('message', (msg) => {
    try {
      const req = parseDhcp(msg);
      if (!req) return;
      const a = answer(req, o);
      if (!a) return;
      const reply = buildReply(req, a.type, o, a.yiaddr);
      const dest = req.ciaddr !== '0.0.0.0' ? req.ciaddr : o.leases.find((l) => l.mac === req.chaddr)!.address;
      s.send(reply, o.clientPort ?? 68, dest, () => {});
      replies++;
    } catch {
      /* a malformed packet: ignored */
    }
  });
  s.unref();
  return {
    close: () => {
      try {
        s.close();
      } catch {
        /* closed */
      }
    },
    get replies() {
      return replies;
    },
  };
}
