/**
 * The addressing policy of a container's network as a pure function: from what is asked (veth, bridge, zone,
 * extra veths, macvlan/ipvlan, moved interfaces, forwarded ports) and the host's facts passed in as data (its
 * addresses and routes, the other containers' records), planNetwork() returns the whole plan: the links with
 * their names, altnames and MACs, the addresses on both sides, the container's default route, masquerading and
 * DNAT (through the record, see state.ts), the DHCP server's lease, and the record that lists everything for the
 * cleanup. Nothing here touches the machine: applyNetworkPlan() (apply.ts) executes a plan.
 */
import { generateMac, ifnameValid, shortenIfname, zoneBridgeName } from './naming.js';
import { allocateSubnet, intToIp4, ip4ToInt, nthAddress, type Subnet4, type TakenPrefix } from './pool.js';
import { parsePair, parseVethExtra } from './links.js';
import type { NetRecord } from './state.js';
import type { DhcpServerOptions } from './dhcp.js';

/** a forwarded port (`-p`): the container's address is the plan's */
export interface PortRequest {
  protocol: 'tcp' | 'udp';
  hostPort: number;
  containerPort: number;
}

/** what a container's network should be (systemd-nspawn's network options) */
export interface NetRequest {
  /** the machine name: link names, MACs, the subnet's first choice, the hosts-file name */
  machine: string;
  /** `-n` / `--network-veth`: ve-NAME (vb-NAME with a bridge or zone) and host0 */
  veth?: boolean;
  /** `--network-veth-extra=HOST[:CONTAINER]` */
  vethExtra?: string[];
  /** `--network-bridge=`: the veth's host side joins this existing bridge (its addressing is the bridge's) */
  bridge?: string;
  /** `--network-zone=`: the veth's host side joins vz-ZONE, made on demand */
  zone?: string;
  macvlan?: string[];
  ipvlan?: string[];
  /** `--network-interface=`: moved into the container, and back at the end */
  interfaces?: string[];
  /** `-p` */
  ports?: PortRequest[];
  /** addresses, route, NAT, DHCP, hosts name (default true); false: links only, as systemd-nspawn does */
  configure?: boolean;
}

/** the host as the planner sees it (readHostFacts() gathers it; tests pass their own) */
export interface HostFacts {
  /** the host's IPv4 addresses (with their prefix lengths); 127/8 is ignored */
  addresses: TakenPrefix[];
  /** the host's IPv4 routes' destinations; default routes and 127/8 are ignored */
  routes: TakenPrefix[];
  /** the records of the containers that run (their subnets are taken; zone mates share a subnet) */
  records: NetRecord[];
  /** the owner written into the record (default: pid 0) */
  owner?: NetRecord['owner'];
  /** name servers handed out by DHCP */
  nameservers?: string[];
  /** the host's machine ID for the MACs (default: generateMac()'s, /etc/machine-id) */
  machineId?: string;
}

/** where the container's subnet lives and who has which address in it */
export interface Addressing {
  /** the host-side interface that carries the subnet (ve-NAME, or vz-ZONE) */
  hostIf: string;
  subnet: Subnet4;
  hostAddress: string;
  containerAddress: string;
  broadcast: string;
}

/** a step in the container's network namespace (made by whoever can enter it: the runtime's helper, or nsenter) */
export type ContainerNetStep =
  | { kind: 'up'; ifname: string }
  | { kind: 'address'; ifname: string; family: 4; address: string; prefixLength: number }
  | { kind: 'route'; ifname: string; family: 4; gateway: string };

export interface PlannedVeth {
  /** ve-NAME or vb-NAME, shortened like systemd */
  host: string;
  /** the full name when shortened (set as altname) */
  altname?: string;
  container: 'host0';
  hostMac: string;
  containerMac: string;
  /** vb-: the host side joins a bridge or zone */
  bridged: boolean;
  bridge?: string;
  zone?: string;
  /** the zone's bridge name (vz-ZONE) */
  zoneBridge?: string;
}

/** an address nspawn puts on a host-side link */
export interface PlannedHostAddress {
  ifname: string;
  address: string;
  prefixLength: number;
  broadcast: string;
  /** a zone bridge: added when the bridge is made, or when it lacks it (someone else's, an earlier run's) */
  zone: boolean;
}

/** a link the plan makes or moves, by its names */
export interface PlannedLink {
  kind: 'veth' | 'veth-extra' | 'macvlan' | 'ipvlan' | 'moved';
  /** the name on the host (a veth's host side: deleted at the end; a moved interface) */
  host?: string;
  /** the name in the container (systemd's shortening applied) */
  container: string;
  /** the full name of a shortened veth host side, set as its altname */
  altname?: string;
  /** macvlan/ipvlan: the host interface it sits on */
  parent?: string;
}

export interface NetPlan {
  machine: string;
  /** every link, in the order it is made */
  links: PlannedLink[];
  /** interfaces moved into the container first */
  moveIn: string[];
  veth?: PlannedVeth;
  addressing?: Addressing;
  hostAddress?: PlannedHostAddress;
  /** net.ipv4.conf.IF.route_localnet=1 (127.0.0.1:PORT reaches the container) */
  routeLocalnet: string[];
  /** a permanent neighbour entry for the container's MAC (DHCP replies reach a client with no address yet) */
  neighbor?: { ifname: string; address: string; mac: string };
  /** the DHCP server's configuration (the container's MAC gets the plan's address) */
  dhcp?: DhcpServerOptions;
  /** host0 up, its address and default route, in the container's namespace */
  container: ContainerNetStep[];
  vethExtra: Array<{ host: string; container: string }>;
  macvlan: string[];
  ipvlan: string[];
  /** what the state directory records (links are filled in as they are made); the nft rules and hosts line derive from it */
  record: NetRecord;
  /** lines to tell the user */
  warnings: string[];
}

/** a request that cannot be planned: the message names the option and value */
export class NetPlanError extends Error {
  override name = 'NetPlanError';
}

/** the broadcast address of a subnet */
export const broadcastOf = (s: Subnet4): string => intToIp4((ip4ToInt(s.network) | (2 ** (32 - s.prefixLength) - 1)) >>> 0);

/** the prefixes a new subnet must not overlap: host addresses and routes (not 127/8, not default routes), records' subnets */
export function takenPrefixes(facts: HostFacts): TakenPrefix[] {
  const out: TakenPrefix[] = [];
  for (const a of facts.addresses) if (!a.address.startsWith('127.')) out.push(a);
  for (const r of facts.routes) if (r.prefixLength > 0 && !r.address.startsWith('127.')) out.push(r);
  for (const rec of facts.records) for (const s of rec.subnets) out.push({ address: s.network, prefixLength: s.prefixLength });
  return out;
}

/** the checks planNetwork() makes before it plans, for a caller that wants them before it takes any lock */
export function checkNetRequest(req: NetRequest): void {
  if (req.bridge !== undefined && req.zone !== undefined) throw new NetPlanError('--network-bridge= and --network-zone= may not be combined.');
  if (req.zone !== undefined && !ifnameValid(`vz-${req.zone}`)) throw new NetPlanError(`Network zone name not valid: vz-${req.zone}`);
}

const hasLinks = (r: NetRequest) => !!(r.veth || r.vethExtra?.length || r.macvlan?.length || r.ipvlan?.length || r.interfaces?.length);

/**
 * The plan for REQ on a host with FACTS. A veth without a bridge gets a /28 of its own (stable per machine name
 * while free); a zone's members share the zone's /24 (the first member's), each with its own address; a bridge
 * gets no address (the bridge's owner addresses it). Throws NetPlanError for what cannot be.
 */
export function planNetwork(req: NetRequest, facts: HostFacts): NetPlan {
  const { machine } = req;
  checkNetRequest(req);
  const macOpts = facts.machineId ? { machineId: facts.machineId } : {};
  const bridged = req.bridge !== undefined || req.zone !== undefined;
  const plan: NetPlan = {
    machine,
    links: [],
    moveIn: [...(req.interfaces ?? [])],
    routeLocalnet: [],
    container: [],
    vethExtra: (req.vethExtra ?? []).map((e) => {
      try {
        return parseVethExtra(e);
      } catch (err) {
        throw new NetPlanError((err as Error).message);
      }
    }),
    macvlan: [...(req.macvlan ?? [])],
    ipvlan: [...(req.ipvlan ?? [])],
    record: { machine, owner: facts.owner ?? { pid: 0, startTime: '' }, links: [], subnets: [], ports: [] },
    warnings: [],
  };
  if (req.zone !== undefined) plan.record.zone = req.zone;
  if (req.veth) {
    const full = (bridged ? 'vb-' : 've-') + machine;
    const host = shortenIfname(full);
    plan.veth = {
      host,
      container: 'host0',
      hostMac: generateMac(machine, 'host', macOpts),
      containerMac: generateMac(machine, 'container', macOpts),
      bridged,
      ...(host !== full ? { altname: full } : {}),
      ...(req.bridge !== undefined ? { bridge: req.bridge } : {}),
      ...(req.zone !== undefined ? { zone: req.zone, zoneBridge: zoneBridgeName(req.zone) } : {}),
    };
  }
  plan.links = linksOf(plan);
  const configure = (req.configure ?? true) && req.veth === true && req.bridge === undefined;
  if (!configure) {
    if (req.ports?.length)
      plan.warnings.push('Warning: --port= needs an address for the container; nspawn configures one only with --network-veth (or --network-zone=): ports are not forwarded.');
    return plan;
  }
  const veth = plan.veth!;
  let a: Addressing;
  if (req.zone !== undefined) {
    const bridge = zoneBridgeName(req.zone);
    const mates = facts.records.filter((r) => r.zone === req.zone && r.subnets.length > 0);
    const subnet = mates[0]?.subnets[0] ?? allocateSubnet(bridge, 24, takenPrefixes(facts)).subnet;
    const used = new Set(mates.map((r) => r.hosts?.address));
    let k = 2;
    while (used.has(nthAddress(subnet, k))) k++;
    a = { hostIf: bridge, subnet, hostAddress: nthAddress(subnet, 1), containerAddress: nthAddress(subnet, k), broadcast: broadcastOf(subnet) };
  } else {
    const al = allocateSubnet(machine, 28, takenPrefixes(facts));
    a = { hostIf: veth.host, subnet: al.subnet, hostAddress: al.hostAddress, containerAddress: nthAddress(al.subnet, 2), broadcast: broadcastOf(al.subnet) };
  }
  plan.addressing = a;
  plan.hostAddress = { ifname: a.hostIf, address: a.hostAddress, prefixLength: a.subnet.prefixLength, broadcast: a.broadcast, zone: req.zone !== undefined };
  if (req.ports?.length) plan.routeLocalnet.push(a.hostIf);
  plan.container = [
    { kind: 'up', ifname: 'host0' },
    { kind: 'address', ifname: 'host0', family: 4, address: a.containerAddress, prefixLength: a.subnet.prefixLength },
    { kind: 'route', ifname: 'host0', family: 4, gateway: a.hostAddress },
  ];
  plan.neighbor = { ifname: a.hostIf, address: a.containerAddress, mac: veth.containerMac };
  plan.dhcp = {
    serverAddress: a.hostAddress,
    prefixLength: a.subnet.prefixLength,
    leases: [{ mac: veth.containerMac, address: a.containerAddress }],
    dns: [...(facts.nameservers ?? [])],
  };
  const r = plan.record;
  r.subnets.push(a.subnet);
  r.masqueradeSubnet = `${a.subnet.network}/${a.subnet.prefixLength}`;
  r.hostIf = a.hostIf;
  r.hosts = { address: a.containerAddress, names: [machine] };
  for (const p of req.ports ?? []) r.ports.push({ protocol: p.protocol, hostPort: p.hostPort, containerPort: p.containerPort, address: a.containerAddress });
  return plan;
}

function linksOf(p: NetPlan): PlannedLink[] {
  const out: PlannedLink[] = p.moveIn.map((i) => ({ kind: 'moved', host: i, container: i }));
  if (p.veth) out.push({ kind: 'veth', host: p.veth.host, container: 'host0', ...(p.veth.altname ? { altname: p.veth.altname } : {}) });
  for (const e of p.vethExtra) out.push({ kind: 'veth-extra', host: e.host, container: e.container });
  const pairs = (specs: string[], kind: 'macvlan' | 'ipvlan', prefix: string) => {
    for (const spec of specs) {
      let pp: { parent: string; full: string };
      try {
        pp = parsePair(spec, prefix);
      } catch (err) {
        throw new NetPlanError((err as Error).message);
      }
      out.push({ kind, container: shortenIfname(pp.full), parent: pp.parent });
    }
  };
  pairs(p.macvlan, 'macvlan', 'mv-');
  pairs(p.ipvlan, 'ipvlan', 'iv-');
  return out;
}

/** whether REQ makes links (then the container needs a sync point for them) */
export const requestHasLinks = hasLinks;
