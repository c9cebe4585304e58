/**
 * What nspawn created for each running container, recorded under /run/nspawn/net/ so that everything shared
 * (nft table, /etc/hosts block, ip_forward) is derived from the live records, and a container that died
 * without cleaning up (kill -9 of nspawn) is collected by the next start: its links deleted, its zone bridge
 * removed when empty, its rules and names dropped. Only names recorded here are ever deleted.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { syncHostsFile } from './hosts.js';
import { leaveZone, removeLinks, type ZoneOptions } from './links.js';
import { applyNft, nftScript, NFT_TABLE, type PortForward } from './nft.js';
import { lockFile, type FdLocker } from './lock.js';

export const STATE_DIR = '/run/nspawn/net';

export interface NetRecord {
  machine: string;
  /** the nspawn process that owns the record, and its start time (so a reused PID does not count) */
  owner: { pid: number; startTime: string };
  /**
   * a process the container lives as long as, when it outlives the owner (nspawnd's helper: nspawnd may restart
   * while its containers run on); the record is live while either runs
   */
  survivor?: { pid: number; startTime: string };
  /** host-side links nspawn created (deleted at the end) */
  links: string[];
  zone?: string;
  /** subnets in use (kept out of other containers' allocations) */
  subnets: Array<{ network: string; prefixLength: number }>;
  masqueradeSubnet?: string;
  hostIf?: string;
  ports: PortForward[];
  /** a name for /etc/hosts */
  hosts?: { address: string; names: string[] };
}

export interface StateOptions {
  dir?: string;
  hostsPath?: string;
  nftTable?: string;
  locker?: FdLocker;
  zone?: ZoneOptions;
  /** manage net.ipv4.ip_forward (on while a container needs it, restored after) */
  ipForward?: boolean;
}

export function processStartTime(pid: number): string | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

export function ownerSelf(): NetRecord['owner'] {
  return { pid: process.pid, startTime: processStartTime(process.pid) ?? '' };
}

const running = (p: { pid: number; startTime: string } | undefined) => p !== undefined && processStartTime(p.pid) === p.startTime;
/** whether the container of record R may still run: its owner (nspawn), or the survivor it names, is alive */
export const recordAlive = (r: NetRecord): boolean => running(r.owner) || running(r.survivor);
const alive = recordAlive;

const dirOf = (o: StateOptions) => o.dir ?? STATE_DIR;
const recordPath = (o: StateOptions, machine: string, pid: number) => join(dirOf(o), `${machine}.${pid}.json`);

export function readRecords(o: StateOptions = {}): Array<{ path: string; record: NetRecord }> {
  let names: string[];
  try {
    names = readdirSync(dirOf(o));
  } catch {
    return [];
  }
  const out: Array<{ path: string; record: NetRecord }> = [];
  for (const n of names) {
    if (!n.endsWith('.json')) continue;
    const path = join(dirOf(o), n);
    try {
      out.push({ path, record: JSON.parse(readFileSync(path, 'utf8')) as NetRecord });
    } catch {
      /* half-written or foreign: ignored */
    }
  }
  return out;
}

/** under the state lock: F() */
export async function withStateLock<T>(o: StateOptions, f: () => Promise<T>): Promise<T> {
  mkdirSync(dirOf(o), { recursive: true, mode: 0o755 });
  const release = lockFile(join(dirOf(o), '.lock'), o.locker);
  try {
    return await f();
  } finally {
    release();
  }
}

export function writeRecord(o: StateOptions, r: NetRecord): string {
  mkdirSync(dirOf(o), { recursive: true, mode: 0o755 });
  const path = recordPath(o, r.machine, r.owner.pid);
  writeFileSync(`${path}.tmp`, JSON.stringify(r, null, 1));
  renameSync(`${path}.tmp`, path);
  return path;
}

const FORWARD = '/proc/sys/net/ipv4/ip_forward';

/** what syncShared() could not do, by piece */
export interface SyncErrors {
  nft?: Error;
  hosts?: Error;
  ipForward?: Error;
}

/**
 * The shared pieces (nft table, hosts block, ip_forward) from the live records; call under the state lock. Each
 * piece is tried whatever happened to the others; the failures are returned.
 */
export function syncShared(o: StateOptions = {}): SyncErrors {
  const errors: SyncErrors = {};
  const live = readRecords(o).map((x) => x.record).filter(alive);
  const needNft = live.some((r) => r.masqueradeSubnet || r.ports.length > 0);
  // a marker, written before the table is made, says it may exist: no nft at all while none is needed
  const marker = join(dirOf(o), `nft-${o.nftTable ?? NFT_TABLE}`);
  try {
    if (needNft) writeFileSync(marker, '');
    if (needNft || existsSync(marker)) {
      applyNft(nftScript(live, o.nftTable ?? NFT_TABLE));
      if (!needNft) rmSync(marker, { force: true });
    }
  } catch (e) {
    errors.nft = e as Error;
  }
  try {
    syncHostsFile(live.flatMap((r) => (r.hosts ? [r.hosts] : [])), o.hostsPath);
  } catch (e) {
    errors.hosts = e as Error;
  }
  if (o.ipForward !== false) {
    try {
      const saved = join(dirOf(o), 'ip_forward.orig');
      let orig: string | undefined;
      try {
        orig = readFileSync(saved, 'utf8').trim();
      } catch {
        /* we did not change it */
      }
      if (needNft) {
        const cur = readFileSync(FORWARD, 'utf8').trim();
        if (cur !== '1') {
          writeFileSync(saved, cur);
          writeFileSync(FORWARD, '1');
        }
      } else if (orig !== undefined) {
        // put back what it was before we turned it on, unless someone changed it since (then it is theirs)
        if (readFileSync(FORWARD, 'utf8').trim() === '1') writeFileSync(FORWARD, orig);
        unlinkSync(saved);
      }
    } catch (e) {
      errors.ipForward = e as Error;
    }
  }
  return errors;
}

/** removes what dead owners left behind (links, empty zones, their records); call under the state lock */
export async function collectLeftovers(o: StateOptions = {}): Promise<string[]> {
  const collected: string[] = [];
  for (const { path, record } of readRecords(o)) {
    if (alive(record)) continue;
    await removeLinks(record.links).catch(() => {});
    if (record.zone) await leaveZone(record.zone, o.zone ?? {}).catch(() => false);
    try {
      unlinkSync(path);
    } catch {
      /* gone */
    }
    collected.push(record.machine);
  }
  return collected;
}

export function removeRecord(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    /* gone */
  }
}
