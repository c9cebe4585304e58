/**
 * `--web=ADDR:PORT` (and $NSPAWND_WEB), `--web-cert=FILE`, `--web-key=FILE` ($NSPAWND_WEB_CERT, $NSPAWND_WEB_KEY):
 * where nspawnd serves its web view, if anywhere. Loaded always (it is small and pure); the server itself
 * (./server.ts) only with --web.
 */
import { BlockList, isIP } from 'node:net';

export interface WebConfig {
  /** the address to listen on (an IP address; "localhost" is 127.0.0.1) */
  host: string;
  /** 0: a free port the kernel picks (`nspawnctl web` tells which) */
  port: number;
  /** TLS: PEM files; required for an address that is not loopback */
  cert?: string;
  key?: string;
}

/** A web option that cannot be used: its one-line message names the option and the value. */
export class WebConfigError extends Error {
  override name = 'WebConfigError';
}

/** 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104 */
let loopback: BlockList | undefined;

export function isLoopback(host: string): boolean {
  if (!loopback) {
    loopback = new BlockList();
    loopback.addSubnet('127.0.0.0', 8, 'ipv4');
    loopback.addAddress('::1', 'ipv6');
    loopback.addSubnet('::ffff:127.0.0.0', 104, 'ipv6');
  }
  const family = isIP(host);
  return family !== 0 && loopback.check(host, family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * Parses VALUE of `--web=` (SOURCE names it in errors: "--web" or "NSPAWND_WEB"): `ADDR:PORT`, `[V6]:PORT`, or a
 * port alone (loopback: 127.0.0.1). With a CERT and a KEY the view is served over TLS; an address that is not
 * loopback needs them.
 */
export function parseWebConfig(value: string, opts: { cert?: string | undefined; key?: string | undefined; source?: string } = {}): WebConfig {
  const src = opts.source ?? '--web';
  const bad = (why: string) => new WebConfigError(`${src}=${value}: ${why}`);
  let host = '127.0.0.1';
  let portText = value;
  const v6 = /^\[([^\]]*)\]:(.*)$/.exec(value);
  if (v6) {
    host = v6[1]!;
    portText = v6[2]!;
  } else if (value.includes(':')) {
    const i = value.lastIndexOf(':');
    host = value.slice(0, i) || '127.0.0.1';
    portText = value.slice(i + 1);
    if (host.includes(':')) throw bad('an IPv6 address goes in brackets: [ADDR]:PORT');
  }
  if (host.toLowerCase() === 'localhost') host = '127.0.0.1';
  if (isIP(host) === 0) throw bad(`'${host}' is not an IP address (give ADDR:PORT, e.g. 127.0.0.1:8484)`);
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) throw bad(`'${portText}' is not a port number (0-65535)`);
  const port = Number(portText);
  const cert = opts.cert || undefined;
  const key = opts.key || undefined;
  if ((cert === undefined) !== (key === undefined)) throw new WebConfigError(`--web-cert and --web-key go together: ${cert === undefined ? '--web-key' : '--web-cert'} was given alone`);
  if (!isLoopback(host) && cert === undefined)
    throw bad(`${host} is not a loopback address: serving the web view there needs TLS (--web-cert=FILE --web-key=FILE)`);
  return { host, port, ...(cert !== undefined ? { cert, key: key! } : {}) };
}

/** The configuration from the environment ($NSPAWND_WEB, $NSPAWND_WEB_CERT, $NSPAWND_WEB_KEY), or undefined (off). */
export function webConfigFromEnv(env: NodeJS.ProcessEnv = process.env): WebConfig | undefined {
  const v = env.NSPAWND_WEB;
  if (v === undefined || v === '' || v === 'no' || v === 'off') return undefined;
  return parseWebConfig(v, { cert: env.NSPAWND_WEB_CERT, key: env.NSPAWND_WEB_KEY, source: 'NSPAWND_WEB' });
}

/** The file in nspawnd's runtime directory (0600) with the view's address and token, for `nspawnctl web`. */
export const WEB_ACCESS_FILE = 'web-access.json';

/** What that file holds. */
export interface WebAccess {
  /** "http://127.0.0.1:8484/" */
  url: string;
  token: string;
  pid: number;
}
