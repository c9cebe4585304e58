/**
 * A thin, typed wrapper around the `netlink` package's rtnetlink socket: every failure is a NetlinkError that
 * names the operation and carries the errno; listeners are guarded (a throwing listener on the raw socket would
 * abort the process, so throws are caught and routed to the socket's error handler).
 */
import { constants as osConstants } from 'node:os';
import { createRtNetlink, type RtNetlinkSocket } from 'netlink';
import { altnameProps, ifinfomsg, linkInfo, IFLA, type LinkInfo } from './attrs.js';

const FLAG_CREATE = 1024;
const FLAG_EXCL = 512;
const IFF_UP = 1;
const RTM_NEWLINKPROP = 108;

export class NetlinkError extends Error {
  override name = 'NetlinkError';
  /** e.g. "ENODEV" */
  readonly code: string;
  /** the positive errno number (0 when unknown) */
  readonly errno: number;
  /** what was being done, e.g. "create veth ve-foo" */
  readonly operation: string;
  constructor(operation: string, cause: unknown) {
    const msg = cause instanceof Error ? cause.message : String(cause);
    const m = /\b(E[A-Z0-9]+)\b/.exec(msg);
    const code = m?.[1] ?? 'EIO';
    const errno = (osConstants.errno as Record<string, number>)[code] ?? 0;
    super(`Failed to ${operation}: ${code}${errno ? ` (errno ${errno})` : ''}`, { cause });
    this.code = code;
    this.errno = errno;
    this.operation = operation;
  }
}

export interface LinkSummary {
  index: number;
  ifname: string;
  altnames: string[];
  address?: string;
  up: boolean;
  master?: number;
  kind?: string;
}

export interface NewLinkOptions {
  ifname: string;
  /** MAC as aa:bb:cc:dd:ee:ff */
  address?: string;
  info: LinkInfo;
  /** the parent link index (macvlan, ipvlan) */
  link?: number;
  /** create the link directly in the network namespace of this PID */
  netNsPid?: number;
  netNsFd?: number;
}

const mac = (s: string) => Buffer.from(s.replaceAll(':', ''), 'hex');

export class Rtnl {
  readonly sock: RtNetlinkSocket;
  private closed = false;

  constructor() {
    this.sock = createRtNetlink();
    // an 'error' event without listener throws; an 'invalid' message is only worth ignoring
    this.sock.socket.on('error', () => {});
    this.sock.on('invalid', () => {});
  }

  /** Subscribes LISTENER to a socket event; a throw inside it goes to ONERROR (default: ignored) instead of aborting. */
  on(event: 'message', listener: (...args: unknown[]) => void, onError: (err: unknown) => void = () => {}): () => void {
    const guarded = (...args: unknown[]) => {
      try {
        listener(...args);
      } catch (err) {
        try {
          onError(err);
        } catch {
          /* never let it escape into the socket's callback */
        }
      }
    };
    this.sock.on(event, guarded as never);
    return () => this.sock.off(event, guarded as never);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sock.socket.close();
  }

  private async op<T>(operation: string, f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (err) {
      throw new NetlinkError(operation, err);
    }
  }

  async newLink(o: NewLinkOptions): Promise<void> {
    const attrs: Record<string, unknown> = { ifname: o.ifname, linkinfo: linkInfo(o.info) };
    if (o.address) attrs.address = mac(o.address);
    if (o.link !== undefined) attrs.link = Buffer.from(Uint32Array.of(o.link).buffer);
    if (o.netNsPid !== undefined) attrs.netNsPid = o.netNsPid;
    if (o.netNsFd !== undefined) attrs.netNsFd = o.netNsFd;
    await this.op(`create ${o.info.kind} ${o.ifname}`, () =>
      this.sock.newLink({}, attrs as never, { flags: FLAG_CREATE | FLAG_EXCL }),
    );
  }

  async delLink(ifname: string): Promise<void> {
    await this.op(`delete link ${ifname}`, () => this.sock.delLink({}, { ifname }));
  }

  /** delete, ignoring a link that is already gone; returns whether it existed */
  async delLinkIfExists(ifname: string): Promise<boolean> {
    try {
      await this.delLink(ifname);
      return true;
    } catch (err) {
      if (err instanceof NetlinkError && err.code === 'ENODEV') return false;
      throw err;
    }
  }

  async getLink(ifname: string): Promise<LinkSummary | undefined> {
    try {
      const r = await this.sock.getLink({}, { ifname });
      const m = r[0];
      return m ? summarize(m) : undefined;
    } catch (err) {
      const e = new NetlinkError(`look up link ${ifname}`, err);
      if (e.code === 'ENODEV') return undefined;
      throw e;
    }
  }

  async getLinks(): Promise<LinkSummary[]> {
    const r = await this.op('list links', () => this.sock.getLinks());
    return r.map(summarize);
  }

  async setUp(ifname: string, up = true): Promise<void> {
    await this.op(`set ${ifname} ${up ? 'up' : 'down'}`, () =>
      this.sock.setLink({ flags: { up } as never, change: { up: true } as never }, { ifname }),
    );
  }

  async setMaster(ifname: string, master: number, up = true): Promise<void> {
    await this.op(`attach ${ifname} to bridge ${master}`, () =>
      this.sock.setLink({ flags: { up } as never, change: { up: true } as never }, { ifname, master }),
    );
  }

  /** moves IFNAME into the network namespace of PID (IFLA_NET_NS_PID) or the fd's namespace */
  async moveToNetns(ifname: string, target: { pid: number } | { fd: number }): Promise<void> {
    const attrs = 'pid' in target ? { ifname, netNsPid: target.pid } : { ifname, netNsFd: target.fd };
    await this.op(`move ${ifname} to another network namespace`, () => this.sock.setLink({}, attrs));
  }

  /** RTM_NEWLINKPROP: adds ALTNAMES to IFNAME */
  async addAltnames(ifname: string, altnames: string[]): Promise<void> {
    const link = await this.getLink(ifname);
    if (!link) throw new NetlinkError(`add altname to ${ifname}`, new Error('ENODEV'));
    const body = Buffer.concat([ifinfomsg(link.index), altnameProps(altnames)]);
    await this.op(`add altname ${altnames.join(',')} to ${ifname}`, () =>
      this.sock.socket.request(RTM_NEWLINKPROP, body, { flags: FLAG_CREATE | FLAG_EXCL | 2048 }),
    );
  }

  async addAddress(ifname: string, family: 4 | 6, address: string, prefixLength: number, opts: { broadcast?: string } = {}): Promise<void> {
    const link = await this.getLink(ifname);
    if (!link) throw new NetlinkError(`add address to ${ifname}`, new Error('ENODEV'));
    const ip = ipBytes(address, family);
    const attrs: Record<string, unknown> = { local: ip, address: ip };
    if (opts.broadcast) attrs.broadcast = ipBytes(opts.broadcast, 4);
    await this.op(`add address ${address}/${prefixLength} to ${ifname}`, () =>
      this.sock.newAddress(
        { family: family === 4 ? 2 : 10, prefixlen: prefixLength, index: link.index } as never,
        attrs as never,
        { flags: FLAG_CREATE | FLAG_EXCL },
      ),
    );
  }

  /** removes ADDRESS/PREFIXLENGTH from IFNAME; false when it was not there */
  async delAddress(ifname: string, family: 4 | 6, address: string, prefixLength: number): Promise<boolean> {
    const link = await this.getLink(ifname);
    if (!link) return false;
    const ip = ipBytes(address, family);
    try {
      await this.sock.delAddress({ family: family === 4 ? 2 : 10, prefixlen: prefixLength, index: link.index } as never, { local: ip, address: ip } as never);
      return true;
    } catch (err) {
      const e = new NetlinkError(`remove address ${address}/${prefixLength} from ${ifname}`, err);
      if (e.code === 'EADDRNOTAVAIL' || e.code === 'ENODEV') return false;
      throw e;
    }
  }

  /** a permanent IPv4 neighbour entry ADDRESS -> MAC on IFNAME (replaced if it exists) */
  async addNeighbor(ifname: string, address: string, macAddress: string): Promise<void> {
    const link = await this.getLink(ifname);
    if (!link) throw new NetlinkError(`add neighbour to ${ifname}`, new Error('ENODEV'));
    await this.op(`add neighbour ${address} on ${ifname}`, () =>
      this.sock.newNeighbor({ family: 2, ifindex: link.index, state: { permanent: true } } as never, { dst: ipBytes(address, 4), lladdr: mac(macAddress) }, {
        flags: FLAG_CREATE | 256 /* REPLACE */,
      }),
    );
  }

  /** every address of the host: [ifindex, family, address, prefix] */
  async getAddresses(): Promise<Array<{ index: number; family: 4 | 6; address: string; prefixLength: number }>> {
    const r = await this.op('list addresses', () => this.sock.getAddresses());
    const out: Array<{ index: number; family: 4 | 6; address: string; prefixLength: number }> = [];
    for (const m of r) {
      const d = m.data as { family?: number; prefixlen?: number; index?: number };
      const a = (m.attrs as { local?: Buffer; address?: Buffer }).local ?? (m.attrs as { address?: Buffer }).address;
      if (!a) continue;
      const family = d.family === 2 ? 4 : 6;
      out.push({ index: d.index ?? 0, family, address: formatIp(a), prefixLength: d.prefixlen ?? 0 });
    }
    return out;
  }

  /** IPv4 routes of the main table: destination/prefix */
  async getRoutes4(): Promise<Array<{ dst: string; prefixLength: number }>> {
    const r = await this.op('list routes', () => this.sock.getRoutes({ family: 2 } as never));
    return r
      .filter((m) => (m.data as { family?: number }).family === 2)
      .map((m) => {
        const dst = (m.attrs as { dst?: Buffer }).dst;
        return { dst: dst ? formatIp(dst) : '0.0.0.0', prefixLength: (m.data as { dstLen?: number }).dstLen ?? 0 };
      });
  }
}

function summarize(m: { data: unknown; attrs: unknown }): LinkSummary {
  const d = m.data as { index?: number; flags?: { up?: boolean } };
  const a = m.attrs as { ifname?: string; address?: Buffer; master?: number; propList?: Buffer; linkinfo?: Buffer };
  const s: LinkSummary = { index: d.index ?? 0, ifname: a.ifname ?? '', altnames: a.propList ? parseAltnames(a.propList) : [], up: !!d.flags?.up };
  if (a.address) s.address = [...a.address].map((x) => x.toString(16).padStart(2, '0')).join(':');
  if (a.master !== undefined) s.master = a.master;
  if (a.linkinfo) {
    const k = parseKind(a.linkinfo);
    if (k) s.kind = k;
  }
  return s;
}

function* walk(b: Buffer): Generator<[number, Buffer]> {
  let o = 0;
  while (o + 4 <= b.length) {
    const len = b.readUInt16LE(o);
    const type = b.readUInt16LE(o + 2) & 0x3fff;
    if (len < 4) break;
    yield [type, b.subarray(o + 4, o + len)];
    o += (len + 3) & ~3;
  }
}
const cstr = (b: Buffer) => b.toString('utf8').replace(/\0.*$/s, '');
function parseAltnames(b: Buffer): string[] {
  const out: string[] = [];
  for (const [t, v] of walk(b)) if (t === IFLA.ALT_IFNAME) out.push(cstr(v));
  return out;
}
function parseKind(b: Buffer): string | undefined {
  for (const [t, v] of walk(b)) if (t === 1) return cstr(v);
  return undefined;
}

export function ipBytes(address: string, family: 4 | 6): Buffer {
  if (family === 4) {
    const p = address.split('.').map(Number);
    if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) throw new RangeError(`not an IPv4 address: ${address}`);
    return Buffer.from(p);
  }
  const [head, tail] = address.includes('::') ? address.split('::') : [address, undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  if (groups.length !== 8) throw new RangeError(`not an IPv6 address: ${address}`);
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
  return b;
}

export function formatIp(b: Buffer): string {
  if (b.length === 4) return [...b].join('.');
  const g: string[] = [];
  for (let i = 0; i < 16; i += 2) g.push(b.readUInt16BE(i).toString(16));
  return g.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
}

export { IFF_UP };
