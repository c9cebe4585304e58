/**
 * Executes a NetPlan (plan.ts) and undoes exactly what it made. Every effect on the machine goes through the small
 * NetEffects interface: netlinkEffects() is the real one (netlink, sysctl files, the DHCP server, nsenter + ip for
 * the container's side); a test passes a recording double. The order is systemd-nspawn's: interfaces moved in,
 * the veth (joined to its bridge or zone), addresses, the neighbour entry and DHCP, extra veths, macvlan, ipvlan.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { startDhcpServer, type DhcpServer, type DhcpServerOptions } from './dhcp.js';
import {
  createIpvlan,
  createMacvlan,
  createVeth,
  createVethExtra,
  joinBridge,
  joinZone,
  leaveZone,
  moveInterfaces,
  moveInterfacesBack,
  removeLinks,
  type InterfaceMover,
  type ZoneOptions,
} from './links.js';
import { Rtnl } from './netlink.js';
import type { ContainerNetStep, NetPlan, PlannedHostAddress } from './plan.js';

/** what applying a plan does to the machine (one method per kind of change) */
export interface NetEffects {
  /** opens the network namespace of PID (kept open until the end: moved interfaces go back from it) */
  openNetns(pid: number): number;
  closeNetns(fd: number): void;
  moveIn(pid: number, ifaces: string[]): Promise<void>;
  moveBack(netnsFd: number, ifaces: string[]): Promise<Error[]>;
  createVeth(machine: string, pid: number, bridged: boolean): Promise<string>;
  joinBridge(ifname: string, bridge: string): Promise<void>;
  /** joins vz-ZONE, making it if missing; ONCREATE configures a bridge this call made */
  joinZone(ifname: string, zone: string, onCreate: (bridge: string) => Promise<void>): Promise<void>;
  /** removes vz-ZONE when empty: true when removed */
  leaveZone(zone: string): Promise<boolean>;
  addAddress(a: PlannedHostAddress): Promise<void>;
  hasAddress(address: string): Promise<boolean>;
  delAddress(a: PlannedHostAddress): Promise<void>;
  setUp(ifname: string): Promise<void>;
  setRouteLocalnet(ifname: string): void;
  addNeighbor(ifname: string, address: string, mac: string): Promise<void>;
  startDhcp(o: DhcpServerOptions): Promise<DhcpServer>;
  createVethExtra(machine: string, pid: number, pairs: Array<{ host: string; container: string }>): Promise<string[]>;
  createMacvlan(machine: string, pid: number, ifaces: string[]): Promise<void>;
  createIpvlan(pid: number, ifaces: string[]): Promise<void>;
  removeLinks(names: string[]): Promise<void>;
  /** the container's side (host0 up, address, route), in PID's namespace; absent: someone else does it (the runtime's helper) */
  configureContainer?(pid: number, steps: ContainerNetStep[]): Promise<void>;
  /** closes what the effects hold (a netlink socket) */
  close(): void;
}

export interface NetlinkEffectsOptions {
  /** a socket to use (default: one of its own, closed by close()) */
  rtnl?: Rtnl;
  /** the host's machine ID for the MACs */
  machineId?: string;
  /** systemd's warning when a name was shortened */
  warn?: (line: string) => void;
  /** the zone lock (systemd's /run/systemd/nspawn-network-zone) */
  zone?: ZoneOptions;
  /** moves interfaces back from the container (default: nsenterMover) */
  mover?: InterfaceMover;
  /** configure the container's side with nsenter(1) and ip(8) (default true; @nspawn/runtime's helper does it itself) */
  configureContainer?: boolean;
}

/** runs `ip ARGS` in the network namespace of PID (util-linux nsenter, iproute2 ip) */
function ipIn(pid: number, args: string[]): void {
  const r = spawnSync('nsenter', [`--net=/proc/${pid}/ns/net`, 'ip', ...args], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.error) throw new Error(`Failed to run nsenter ip ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')} in the container's namespace failed: ${r.stderr.trim() || `exit ${r.status}`}`);
}

/** the real effects: netlink for links and addresses, /proc/sys for route_localnet, the UDP DHCP server */
export function netlinkEffects(o: NetlinkEffectsOptions = {}): NetEffects {
  // (the socket is opened on first use: an undo that only deletes links opens none)
  let own: Rtnl | undefined;
  const sock = (): Rtnl => o.rtnl ?? (own ??= new Rtnl());
  const rest = { ...(o.machineId ? { machineId: o.machineId } : {}), ...(o.warn ? { warn: o.warn } : {}) };
  const ctx = () => ({ rtnl: sock(), ...rest });
  const fx: NetEffects = {
    openNetns: (pid) => openSync(`/proc/${pid}/ns/net`, 'r'),
    closeNetns: (fd) => closeSync(fd),
    moveIn: (pid, ifaces) => moveInterfaces(pid, ifaces, ctx()),
    moveBack: (fd, ifaces) => moveInterfacesBack(fd, ifaces, o.mover ? { mover: o.mover } : {}),
    createVeth: async (machine, pid, bridged) => (await createVeth(machine, pid, { ...ctx(), bridged })).host,
    joinBridge: async (ifname, bridge) => {
      await joinBridge(ifname, bridge, ctx());
    },
    joinZone: async (ifname, zone, onCreate) => {
      await joinZone(ifname, zone, { ...(o.zone ?? {}), ...ctx(), onCreate: (bridge) => onCreate(bridge) });
    },
    leaveZone: (zone) => leaveZone(zone, o.zone ?? {}),
    addAddress: (a) => sock().addAddress(a.ifname, 4, a.address, a.prefixLength, { broadcast: a.broadcast }),
    hasAddress: async (address) => (await sock().getAddresses()).some((x) => x.address === address),
    delAddress: async (a) => {
      // (a socket of its own: the undo may run after close())
      const r = new Rtnl();
      try {
        await r.delAddress(a.ifname, 4, a.address, a.prefixLength);
      } finally {
        r.close();
      }
    },
    setUp: (ifname) => sock().setUp(ifname),
    setRouteLocalnet: (ifname) => writeFileSync(`/proc/sys/net/ipv4/conf/${ifname}/route_localnet`, '1'),
    addNeighbor: (ifname, address, mac) => sock().addNeighbor(ifname, address, mac),
    startDhcp: (d) => startDhcpServer(d),
    createVethExtra: async (machine, pid, pairs) => (await createVethExtra(machine, pid, pairs, ctx())).map((m) => m.host),
    createMacvlan: async (machine, pid, ifaces) => {
      await createMacvlan(machine, pid, ifaces, ctx());
    },
    createIpvlan: async (pid, ifaces) => {
      await createIpvlan(pid, ifaces, ctx());
    },
    // (a socket of its own: the undo runs after close())
    removeLinks: (names) => removeLinks(names),
    close: () => {
      own?.close();
      own = undefined;
    },
  };
  if (o.configureContainer !== false)
    fx.configureContainer = async (pid, steps) => {
      for (const s of steps) {
        if (s.kind === 'up') ipIn(pid, ['link', 'set', s.ifname, 'up']);
        else if (s.kind === 'address') ipIn(pid, ['-4', 'address', 'add', `${s.address}/${s.prefixLength}`, 'broadcast', '+', 'dev', s.ifname]);
        else ipIn(pid, ['-4', 'route', 'add', 'default', 'via', s.gateway, 'dev', s.ifname]);
      }
    };
  return fx;
}

/** what applyNetworkPlan() made: exactly what undoNetworkPlan() removes */
export interface AppliedNetwork {
  /** host-side links it created */
  links: string[];
  /** interfaces it moved into the container */
  movedIn: string[];
  /** the zone it joined */
  zoneJoined?: string;
  /** the container's network namespace, open */
  netnsFd?: number;
  dhcp?: DhcpServer;
}

export interface ApplyOptions {
  /** warnings (the DHCP server could not start) */
  warn?: (line: string) => void;
}

/**
 * Makes PLAN for the container whose process is PID. APPLIED (returned) is filled in as things are made, so that
 * after a failure the caller's object still lists what exists: pass it to undoNetworkPlan().
 */
export async function applyNetworkPlan(plan: NetPlan, pid: number, fx: NetEffects, applied: AppliedNetwork = { links: [], movedIn: [] }, opts: ApplyOptions = {}): Promise<AppliedNetwork> {
  applied.netnsFd = fx.openNetns(pid);
  if (plan.moveIn.length > 0) {
    await fx.moveIn(pid, plan.moveIn);
    applied.movedIn = [...plan.moveIn];
  }
  const v = plan.veth;
  const h = plan.hostAddress;
  if (v) {
    applied.links.push(await fx.createVeth(plan.machine, pid, v.bridged));
    if (v.bridge !== undefined) await fx.joinBridge(v.host, v.bridge);
    else if (v.zone !== undefined) {
      await fx.joinZone(v.host, v.zone, async () => {
        if (h) await fx.addAddress(h);
      });
      applied.zoneJoined = v.zone;
    } else if (h) {
      await fx.addAddress(h);
      for (const i of plan.routeLocalnet) fx.setRouteLocalnet(i);
      await fx.setUp(v.host);
    }
    // a zone bridge that someone else created (or an earlier run of ours) may lack the address
    if (h?.zone) {
      if (!(await fx.hasAddress(h.address))) await fx.addAddress(h);
      for (const i of plan.routeLocalnet) fx.setRouteLocalnet(i);
    }
    if (plan.container.length > 0 && fx.configureContainer) await fx.configureContainer(pid, plan.container);
  }
  // a DHCP client in the container (networkd, udhcpc) gets the same address
  if (plan.neighbor && plan.dhcp && applied.links.length > 0) {
    await fx.addNeighbor(plan.neighbor.ifname, plan.neighbor.address, plan.neighbor.mac);
    applied.dhcp = await fx.startDhcp(plan.dhcp).catch((e: Error) => {
      opts.warn?.(`Warning: no DHCP server for the container: ${e.message}`);
      return undefined;
    });
    if (!applied.dhcp) delete applied.dhcp;
  }
  if (plan.vethExtra.length > 0) applied.links.push(...(await fx.createVethExtra(plan.machine, pid, plan.vethExtra)));
  if (plan.macvlan.length > 0) await fx.createMacvlan(plan.machine, pid, plan.macvlan);
  if (plan.ipvlan.length > 0) await fx.createIpvlan(pid, plan.ipvlan);
  return applied;
}

export interface UndoOptions {
  /**
   * After leaving a zone whose bridge stays (other members): DEL removes our address from it. Default: DEL()
   * when the bridge stays. @nspawn/runtime calls it only when no other container of its own is in the zone.
   */
  zoneAddress?: (del: () => Promise<void>) => Promise<void>;
}

/**
 * Removes what APPLIED lists (and nothing else): the DHCP server, moved interfaces back, the links, the zone's
 * bridge when empty (else our address on it). Errors are collected; APPLIED is emptied as it goes.
 */
export async function undoNetworkPlan(plan: NetPlan, applied: AppliedNetwork, fx: NetEffects, opts: UndoOptions = {}): Promise<Error[]> {
  const errors: Error[] = [];
  applied.dhcp?.close();
  delete applied.dhcp;
  if (applied.netnsFd !== undefined) {
    if (applied.movedIn.length > 0) {
      errors.push(...(await fx.moveBack(applied.netnsFd, applied.movedIn)));
      applied.movedIn = [];
    }
    fx.closeNetns(applied.netnsFd);
    delete applied.netnsFd;
  }
  await fx.removeLinks(applied.links).catch((e: Error) => errors.push(e));
  applied.links = [];
  if (applied.zoneJoined !== undefined) {
    const zone = applied.zoneJoined;
    const removed = await fx.leaveZone(zone).catch((e: Error) => (errors.push(e), false));
    delete applied.zoneJoined;
    const h = plan.hostAddress;
    if (!removed && h) {
      const del = () => fx.delAddress(h);
      await (opts.zoneAddress ? opts.zoneAddress(del) : del()).catch((e: Error) => errors.push(e));
    }
  }
  return errors;
}
