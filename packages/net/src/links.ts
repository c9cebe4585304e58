/**
 * systemd-nspawn's links (nspawn-network.c): the veth pair ve-NAME/host0, extra veths, bridges and zones,
 * macvlan and ipvlan, interfaces moved in and back. Each function opens its own netlink socket unless one is
 * passed.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { generateMac, ifnameValid, shortenIfname, vethNames, zoneBridgeName } from './naming.js';
import { NetlinkError, Rtnl } from './netlink.js';
import { lockFile, ZONE_LOCK_PATH, type FdLocker } from './lock.js';

export interface Ctx {
  rtnl?: Rtnl;
  /** the host's machine ID (default: /etc/machine-id) */
  machineId?: string;
  /** systemd's warning when a name was shortened */
  warn?: (line: string) => void;
}

async function withRtnl<T>(ctx: Ctx, f: (r: Rtnl) => Promise<T>): Promise<T> {
  if (ctx.rtnl) return f(ctx.rtnl);
  const r = new Rtnl();
  try {
    return await f(r);
  } finally {
    r.close();
  }
}

function shortened(full: string, ctx: Ctx): { name: string; altname?: string } {
  const name = shortenIfname(full);
  if (name === full) return { name };
  ctx.warn?.(`Network interface name '${full}' has been changed to '${name}' to fit length constraints.`);
  return { name, altname: full };
}

const macOpts = (ctx: Ctx, idx = 0) => ({ ...(ctx.machineId ? { machineId: ctx.machineId } : {}), idx });

export interface VethResult {
  host: string;
  altname?: string;
  container: string;
  hostMac: string;
  containerMac: string;
}

/**
 * setup_veth(): creates ve-NAME (vb-NAME when bridged) on the host with its peer host0 in the network namespace
 * of PID, with systemd's MACs; a shortened name gets the full one as altname. The host side is left down, as
 * systemd leaves it (networkd brings it up); pass up to bring it up.
 */
export async function createVeth(machineName: string, pid: number, opts: Ctx & { bridged?: boolean; up?: boolean } = {}): Promise<VethResult> {
  const full = (opts.bridged ? 'vb-' : 've-') + machineName;
  const { name, altname } = shortened(full, opts);
  const hostMac = generateMac(machineName, 'host', macOpts(opts));
  const containerMac = generateMac(machineName, 'container', macOpts(opts));
  await withRtnl(opts, async (r) => {
    await r.newLink({ ifname: name, address: hostMac, info: { kind: 'veth', peer: { ifname: 'host0', address: Buffer.from(containerMac.replaceAll(':', ''), 'hex'), netNsPid: pid } } });
    if (altname) await r.addAltnames(name, [altname]).catch(() => {}); // (void) set_alternative_ifname()
    if (opts.up) await r.setUp(name);
  });
  const res: VethResult = { host: name, container: 'host0', hostMac, containerMac };
  if (altname) res.altname = altname;
  return res;
}
export { vethNames };

/** VirtualEthernetExtra=HOST[:CONTAINER]: "HOST" or "HOST:CONT" parsed (veth_extra_parse()) */
export function parseVethExtra(s: string): { host: string; container: string } {
  const [a, b, ...rest] = s.split(':');
  if (rest.length > 0 || !a || !ifnameValid(a)) throw new RangeError(`Invalid --network-veth-extra= value: ${s}`);
  return { host: a, container: b && ifnameValid(b) ? b : a };
}

/** setup_veth_extra(): each pair with the extra-veth MAC keys and its index */
export async function createVethExtra(machineName: string, pid: number, pairs: Array<{ host: string; container: string }>, ctx: Ctx = {}): Promise<VethResult[]> {
  return withRtnl(ctx, async (r) => {
    const out: VethResult[] = [];
    let idx = 0;
    for (const p of pairs) {
      const containerMac = generateMac(machineName, 'vethExtraContainer', macOpts(ctx, idx));
      const hostMac = generateMac(machineName, 'vethExtraHost', macOpts(ctx, idx));
      await r.newLink({ ifname: p.host, address: hostMac, info: { kind: 'veth', peer: { ifname: p.container, address: Buffer.from(containerMac.replaceAll(':', ''), 'hex'), netNsPid: pid } } });
      out.push({ host: p.host, container: p.container, hostMac, containerMac });
      idx++;
    }
    return out;
  });
}

/** create_bridge(): a bridge named NAME */
export async function createBridge(name: string, ctx: Ctx = {}): Promise<void> {
  await withRtnl(ctx, (r) => r.newLink({ ifname: name, info: { kind: 'bridge' } }));
}

/** join_bridge(): IFNAME up and enslaved to BRIDGE (which must exist) */
export async function joinBridge(ifname: string, bridge: string, ctx: Ctx = {}): Promise<number> {
  return withRtnl(ctx, async (r) => {
    const br = await r.getLink(bridge);
    if (!br) throw new NetlinkError(`add interface ${ifname} to bridge ${bridge}`, new Error('ENODEV'));
    await r.setMaster(ifname, br.index);
    return br.index;
  });
}

export interface ZoneOptions extends Ctx {
  locker?: FdLocker;
  lockPath?: string;
  /** called with the bridge's name when this call created it (to configure it) */
  onCreate?: (bridge: string, r: Rtnl) => Promise<void>;
}

/** setup_bridge(veth, "vz-ZONE", create=true): joins the zone's bridge, creating it if missing, under the zone lock */
export async function joinZone(ifname: string, zone: string, opts: ZoneOptions = {}): Promise<{ bridge: string; created: boolean }> {
  const bridge = zoneBridgeName(zone);
  const release = lockFile(opts.lockPath ?? ZONE_LOCK_PATH, opts.locker);
  try {
    return await withRtnl(opts, async (r) => {
      let created = false;
      for (let n = 0; ; n++) {
        const br = await r.getLink(bridge);
        if (br) {
          await r.setMaster(ifname, br.index);
          return { bridge, created };
        }
        if (n > 10) throw new NetlinkError(`add interface ${ifname} to bridge ${bridge}`, new Error('ENODEV'));
        await r.newLink({ ifname: bridge, info: { kind: 'bridge' } });
        created = true;
        await opts.onCreate?.(bridge, r);
        await r.setUp(bridge);
      }
    });
  } finally {
    release();
  }
}

/** remove_bridge(): removes vz-ZONE if no interface is left in it, under the zone lock; true when removed */
export async function leaveZone(zone: string, opts: ZoneOptions = {}): Promise<boolean> {
  const bridge = zoneBridgeName(zone);
  const release = lockFile(opts.lockPath ?? ZONE_LOCK_PATH, opts.locker);
  try {
    let members: string[];
    try {
      members = readdirSync(`/sys/class/net/${bridge}/brif`);
    } catch {
      return false; // already gone
    }
    if (members.length > 0) return false;
    return await withRtnl(opts, (r) => r.delLinkIfExists(bridge));
  } finally {
    release();
  }
}

/** MACVLAN=/IPVLAN= entries: "HOST" or "HOST:CONTAINER" (the container's name: CONTAINER, else PREFIX+HOST) */
export function parsePair(s: string, prefix: string): { parent: string; name: string; altname?: string; full: string } {
  const [parent, cont] = s.split(':');
  if (!parent || !ifnameValid(parent)) throw new RangeError(`Invalid interface name: ${s}`);
  const full = cont ?? prefix + parent;
  return { parent, name: full, full };
}

/** setup_macvlan(): mv-IF (bridge mode) on each parent, created in PID's namespace, with systemd's MACs */
export async function createMacvlan(machineName: string, pid: number, ifaces: string[], ctx: Ctx = {}): Promise<string[]> {
  return withRtnl(ctx, async (r) => {
    const out: string[] = [];
    let idx = 0;
    for (const spec of ifaces) {
      const p = parsePair(spec, 'mv-');
      const parent = await r.getLink(p.parent);
      if (!parent) throw new NetlinkError(`resolve interface ${p.parent}`, new Error('ENODEV'));
      const mac = generateMac(machineName, 'macvlan', macOpts(ctx, idx++));
      const { name, altname } = shortened(p.full, ctx);
      await r.newLink({ ifname: name, address: mac, link: parent.index, netNsPid: pid, info: { kind: 'macvlan', mode: 'bridge' } });
      void altname; // the link is in the container's namespace now: systemd's set_alternative_ifname() fails there too
      out.push(name);
    }
    return out;
  });
}

/** setup_ipvlan(): iv-IF (L2 mode) on each parent, created in PID's namespace */
export async function createIpvlan(pid: number, ifaces: string[], ctx: Ctx = {}): Promise<string[]> {
  return withRtnl(ctx, async (r) => {
    const out: string[] = [];
    for (const spec of ifaces) {
      const p = parsePair(spec, 'iv-');
      const parent = await r.getLink(p.parent);
      if (!parent) throw new NetlinkError(`resolve interface ${p.parent}`, new Error('ENODEV'));
      const { name } = shortened(p.full, ctx);
      await r.newLink({ ifname: name, link: parent.index, netNsPid: pid, info: { kind: 'ipvlan', mode: 'l2' } });
      out.push(name);
    }
    return out;
  });
}

/** move_network_interfaces(): each interface into PID's network namespace */
export async function moveInterfaces(pid: number, ifaces: string[], ctx: Ctx = {}): Promise<void> {
  await withRtnl(ctx, async (r) => {
    for (const i of ifaces) {
      if (!(await r.getLink(i))) throw new NetlinkError(`resolve interface ${i}`, new Error('ENODEV'));
      await r.moveToNetns(i, { pid });
    }
  });
}

/**
 * Runs in the container's network namespace (open at fd 3 of the child it spawns) and moves IFACES back into
 * ours; returns one Error per interface that failed. Node cannot setns(), so this needs a child process.
 */
export type InterfaceMover = (netnsFd: number, ifaces: string[]) => Error[];

/**
 * The default mover: util-linux nsenter into the namespace, then a Node process that moves each link with netlink
 * (IFLA_NET_NS_FD of our namespace, passed as its fd 3). @nspawn/runtime passes its native helper instead.
 */
export const nsenterMover: InterfaceMover = (netnsFd, ifaces) => {
  const netlink = createRequire(import.meta.url).resolve('netlink');
  const script = `const { createRtNetlink } = require(${JSON.stringify(netlink)});
const s = createRtNetlink(); let bad = 0;
(async () => { for (const ifname of process.argv.slice(1)) { try { await s.setLink({}, { ifname, netNsFd: 3 }); }
  catch (e) { bad++; console.error('moving ' + ifname + ' back to the host: ' + e.message); } } s.socket.close(); process.exit(bad); })();`;
  const host = openSync('/proc/self/ns/net', 'r');
  try {
    const r = spawnSync('nsenter', [`--net=/proc/${process.pid}/fd/${netnsFd}`, process.execPath, '-e', script, ...ifaces], {
      stdio: ['ignore', 'ignore', 'pipe', host],
      encoding: 'utf8',
    });
    if (r.error) return [r.error];
    return r.status === 0 ? [] : (r.stderr.trim() || `exit ${r.status}`).split('\n').map((l) => new Error(l));
  } finally {
    closeSync(host);
  }
};

/**
 * move_back_network_interfaces(): the interfaces go back from the container's network namespace (open at NETNSFD:
 * keep the fd while the container runs, so the namespace outlives it) into ours. Errors are returned, not thrown.
 */
export async function moveInterfacesBack(netnsFd: number, ifaces: string[], opts: { mover?: InterfaceMover } = {}): Promise<Error[]> {
  if (ifaces.length === 0) return [];
  return (opts.mover ?? nsenterMover)(netnsFd, ifaces);
}

/** remove_veth_links(): deletes the links (gone ones are fine) */
export async function removeLinks(names: string[], ctx: Ctx = {}): Promise<void> {
  await withRtnl(ctx, async (r) => {
    for (const n of names) await r.delLinkIfExists(n);
  });
}
