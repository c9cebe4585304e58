/**
 * Addresses for a container's links, picked like systemd-networkd's 80-container-ve.network / -vz.network
 * (Address=0.0.0.0/28 for a veth, /24 for a zone's bridge, from the pools 10.0.0.0/8, 172.16.0.0/12,
 * 192.168.0.0/16): a subnet that overlaps no address or route of the host and no other container's. The first
 * candidate is derived from the machine (zone) name, so a container gets the same subnet on every start while it
 * is free. (IPv6: the links' link-local addresses; forwarded ports reach the container over IPv4.)
 */
import { hexKey, siphash24 } from './siphash.js';

export const IPV4_POOLS: ReadonlyArray<readonly [string, number]> = [
  ['10.0.0.0', 8],
  ['172.16.0.0', 12],
  ['192.168.0.0', 16],
];
const POOL_KEY = hexKey('6e7370617776706f6f6c6b6579303031');

export const ip4ToInt = (s: string): number => s.split('.').reduce((a, x) => a * 256 + Number(x), 0) >>> 0;
export const intToIp4 = (n: number): string => [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');

export interface Subnet4 {
  /** network address */
  network: string;
  prefixLength: number;
}

export interface Allocation {
  subnet: Subnet4;
  /** the host side's (bridge's) address: the first one of the subnet */
  hostAddress: string;
}

const overlaps = (a: number, alen: number, b: number, blen: number): boolean => {
  const len = Math.min(alen, blen);
  const mask = len === 0 ? 0 : (~0 << (32 - len)) >>> 0;
  return ((a & mask) >>> 0) === ((b & mask) >>> 0);
};

/** a prefix in use: a host address's network, a route's destination, another container's subnet */
export interface TakenPrefix {
  address: string;
  prefixLength: number;
}

/** picks a free subnet of PREFIXLENGTH bits for NAME, avoiding TAKEN (default route 0.0.0.0/0 entries are ignored) */
export function allocateSubnet(name: string, prefixLength: number, taken: TakenPrefix[]): Allocation {
  const t = taken.filter((x) => x.prefixLength > 0).map((x) => [ip4ToInt(x.address), x.prefixLength] as const);
  const h = siphash24(Buffer.from(`${prefixLength}:${name}`), POOL_KEY);
  for (const [base, plen] of IPV4_POOLS) {
    const count = 2 ** (prefixLength - plen);
    const start = Number(h % BigInt(count));
    const b = ip4ToInt(base);
    for (let i = 0; i < count; i++) {
      const k = (start + i) % count;
      const net = (b + k * 2 ** (32 - prefixLength)) >>> 0;
      if (t.some(([a, l]) => overlaps(a, l, net, prefixLength))) continue;
      return { subnet: { network: intToIp4(net), prefixLength }, hostAddress: intToIp4(net + 1) };
    }
  }
  throw new Error(`No free /${prefixLength} IPv4 subnet left in ${IPV4_POOLS.map(([a, l]) => `${a}/${l}`).join(', ')}`);
}

/** the Nth address of a subnet (1: the host side, 2..: containers) */
export function nthAddress(subnet: Subnet4, n: number): string {
  if (n <= 0 || n >= 2 ** (32 - subnet.prefixLength) - 1) throw new RangeError(`no address ${n} in ${subnet.network}/${subnet.prefixLength}`);
  return intToIp4(ip4ToInt(subnet.network) + n);
}
