/**
 * systemd-nspawn's interface names and MAC addresses (src/nspawn/nspawn-network.c, v252): bit-exact, so a
 * container gets the same names and MACs under nspawn and systemd-nspawn.
 */
import { readFileSync } from 'node:fs';
import { hexKey, siphash24 } from './siphash.js';

/** IFNAMSIZ: a name has at most 15 characters */
export const IFNAMSIZ = 16;

/** The hash keys nspawn-network.c uses, one per purpose. */
export const HASH_KEYS = {
  host: hexKey('1a376fc746ec450bada3d53106605db1'),
  container: hexKey('c3c4f919b557b21ce6cf1427039ceea2'),
  vethExtraHost: hexKey('48c7f6b7ea9d4c9eb728d4de91d5bf66'),
  vethExtraContainer: hexKey('af501761cef94d35840d2b2054bece59'),
  macvlan: hexKey('00136dbc66834481bb0cf9511f24a66f'),
  shortenIfname: hexKey('e190a404a8ef4b518cccc33a9f11fca2'),
} as const;
export type MacPurpose = Exclude<keyof typeof HASH_KEYS, 'shortenIfname'>;

const URLSAFE_B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * shorten_ifname(): a name of IFNAMSIZ (16) characters or more becomes its first 11 characters and 4 characters
 * of URL-safe base64 of the low 24 bits of siphash24(name). Shorter names are returned as they are.
 */
export function shortenIfname(name: string): string {
  const bytes = Buffer.from(name, 'utf8');
  if (bytes.length < IFNAMSIZ) return name;
  const h = siphash24(bytes, HASH_KEYS.shortenIfname);
  const c = (shift: bigint) => URLSAFE_B64[Number((h >> shift) & 63n)]!;
  return bytes.subarray(0, IFNAMSIZ - 5).toString('latin1') + c(18n) + c(12n) + c(6n) + c(0n);
}

/** The host's machine ID (/etc/machine-id) as 32 hex digits. */
export function hostMachineId(path = '/etc/machine-id'): string {
  const t = readFileSync(path, 'utf8').trim().toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(t) || /^0+$/.test(t)) throw new Error(`${path} does not hold a machine ID`);
  return t;
}

/**
 * generate_mac(): the first 6 bytes of siphash24(machine-id || machine name [|| le64 idx]) under the purpose's
 * key, with the multicast bit cleared and the locally-administered bit set. idx 0 is not appended.
 */
export function generateMac(machineName: string, purpose: MacPurpose, opts: { machineId?: string; idx?: number } = {}): string {
  const id = Buffer.from(opts.machineId ?? hostMachineId(), 'hex');
  if (id.length !== 16) throw new RangeError('machineId must be 32 hex digits');
  const name = Buffer.from(machineName, 'utf8');
  const parts = [id, name];
  const idx = opts.idx ?? 0;
  if (idx > 0) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(idx));
    parts.push(b);
  }
  const h = siphash24(Buffer.concat(parts), HASH_KEYS[purpose]);
  const out = Buffer.alloc(8);
  out.writeBigUInt64LE(h);
  out[0] = (out[0]! & 0xfe) | 0x02;
  return formatMac(out.subarray(0, 6));
}

export function formatMac(b: Uint8Array): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

export function parseMac(s: string): Buffer {
  if (!/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(s)) throw new RangeError(`not a MAC address: ${s}`);
  return Buffer.from(s.replaceAll(':', ''), 'hex');
}

/** ifname_valid(): 1..15 bytes, no '/', ':', whitespace, not "." or ".." */
export function ifnameValid(name: string): boolean {
  if (name.length === 0 || Buffer.byteLength(name) >= IFNAMSIZ) return false;
  if (name === '.' || name === '..') return false;
  return !/[/:\s]/.test(name) && [...name].every((ch) => ch.charCodeAt(0) > 32 && ch.charCodeAt(0) < 127);
}

export interface VethNames {
  /** the host side's name (shortened) */
  host: string;
  /** the full name, set as an altname, when it had to be shortened */
  altname?: string;
  container: 'host0';
}

/** setup_veth(): `ve-NAME`, or `vb-NAME` when the host side joins a bridge or zone. */
export function vethNames(machineName: string, bridged = false): VethNames {
  const full = (bridged ? 'vb-' : 've-') + machineName;
  const host = shortenIfname(full);
  return host === full ? { host, container: 'host0' } : { host, altname: full, container: 'host0' };
}

/** `vz-ZONE`, the zone's bridge; a RangeError with systemd 252's words when that is no valid interface name */
export function zoneBridgeName(zone: string): string {
  const name = `vz-${zone}`;
  if (!ifnameValid(name)) throw new RangeError(`Network zone name not valid: ${name}`);
  return name;
}
