/** Network values: interface names, --port/Port=, veth and interface pairs (nspawn-expose-ports.c, nspawn-network.c). */
import { type Result, SAFE_ATO_REFUSE_LEADING_WHITESPACE, WHITESPACE, fail, isEmpty, ok, safeAtoi, safeAtou16 } from './c-util.js';
import { EXTRACT_DONT_COALESCE_SEPARATORS, extractFirstWord } from './extract-word.js';
import type { ExposePort } from './model.js';

const IFNAMSIZ = 16;
/** ifname_valid(): 1..15 printable ASCII characters, no ':', '/', '%', not all digits, not ".", "..", "all", "default". */
export function ifnameValid(p: string): boolean {
  if (p === '') return false;
  const idx = safeAtoi(p);
  if (idx.ok && idx.value > 0) return false; // looks like an interface index
  if (p.length >= IFNAMSIZ) return false;
  if (p === '.' || p === '..' || p === 'all' || p === 'default') return false;
  let numeric = true;
  for (let i = 0; i < p.length; i++) {
    const c = p.charCodeAt(i);
    if (c >= 127 || c <= 32 || c === 0x3a || c === 0x2f || c === 0x25) return false;
    numeric &&= c >= 48 && c <= 57;
  }
  return !numeric;
}

/** parse_ip_port(): 1..65535, C number syntax (so "0x50" is 80 and "080" is invalid octal). */
function parseIpPort(s: string): Result<number> {
  const r = safeAtou16(s, SAFE_ATO_REFUSE_LEADING_WHITESPACE);
  if (!r.ok) return r;
  return r.value === 0 ? fail('EINVAL') : r;
}

/** expose_port_parse() without the duplicate check: "[tcp:|udp:]HOST[:CONTAINER]". */
export function exposePortParse(s: string): Result<ExposePort> {
  let protocol: 'tcp' | 'udp' = 'tcp';
  let e = s;
  if (s.startsWith('tcp:')) e = s.slice(4);
  else if (s.startsWith('udp:')) {
    protocol = 'udp';
    e = s.slice(4);
  }
  const split = e.indexOf(':');
  if (split >= 0) {
    const host = parseIpPort(e.slice(0, split));
    if (!host.ok) return fail('EINVAL');
    const container = parseIpPort(e.slice(split + 1));
    return container.ok ? ok({ protocol, hostPort: host.value, containerPort: container.value }) : container;
  }
  const port = parseIpPort(e);
  return port.ok ? ok({ protocol, hostPort: port.value, containerPort: port.value }) : port;
}

/** veth_extra_parse(): "HOST[:CONTAINER]"; an invalid container name silently becomes HOST. Returns "HOST" or "HOST:CONTAINER". */
export function vethExtraParse(p: string): Result<string> {
  const a = extractFirstWord(p, ':', EXTRACT_DONT_COALESCE_SEPARATORS);
  if (!a.ok) return a;
  if (a.word === null || !ifnameValid(a.word)) return fail('EINVAL');
  const b = extractFirstWord(a.rest, ':', EXTRACT_DONT_COALESCE_SEPARATORS);
  if (!b.ok) return b;
  if (b.rest !== null) return fail('EINVAL');
  const container = b.word !== null && ifnameValid(b.word) ? b.word : a.word;
  return ok(container === a.word ? a.word : `${a.word}:${container}`);
}

export type InterfaceKind = 'Interface' | 'MACVLAN' | 'IPVLAN';
const IFACE_KIND_TEXT: Readonly<Record<InterfaceKind, string>> = {
  Interface: 'Network interface',
  MACVLAN: 'MACVLAN network interface',
  IPVLAN: 'IPVLAN network interface',
};
const IFACE_PREFIX: Readonly<Record<InterfaceKind, string>> = { Interface: '', MACVLAN: 'mv-', IPVLAN: 'iv-' };

/**
 * network_iface_pair_parse() (systemd v257+): whitespace-separated "HOST[:CONTAINER]" words. Entries are
 * returned as written: "HOST" or "HOST:CONTAINER". Errors here make systemd refuse the whole file.
 */
export function interfacePairsParse(kind: InterfaceKind, p: string): { ok: true; value: string[] } | { ok: false; why: string } {
  const out: string[] = [];
  let rest: string | null = p;
  const what = IFACE_KIND_TEXT[kind];
  for (;;) {
    const w = extractFirstWord(rest, WHITESPACE, 0);
    if (!w.ok) return { ok: false, why: 'Failed to parse interface name: Invalid argument' };
    if (w.word === null) return { ok: true, value: out };
    rest = w.rest;
    const a = extractFirstWord(w.word, ':', EXTRACT_DONT_COALESCE_SEPARATORS);
    if (!a.ok) return { ok: false, why: `Failed to extract first word in ${what} parameter: Invalid argument` };
    if (a.word === null) return { ok: false, why: `Short read while reading ${what} parameter.` };
    if (!ifnameValid(a.word)) return { ok: false, why: `${what}, interface name not valid: ${a.word}` };
    if (!isEmpty(a.rest)) {
      if (!ifnameValid(a.rest!)) return { ok: false, why: `${what}, interface name not valid: ${a.rest}` };
      out.push(`${a.word}:${a.rest}`);
    } else out.push(a.word);
  }
}

/** The host and container interface names of an entry of networkInterfaces/networkMacvlan/networkIpvlan. */
export function interfacePair(kind: InterfaceKind, entry: string): [host: string, container: string] {
  const i = entry.indexOf(':');
  if (i >= 0) return [entry.slice(0, i), entry.slice(i + 1)];
  return [entry, IFACE_PREFIX[kind] + entry];
}
