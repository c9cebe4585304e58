/**
 * Networking of a container, as systemd-nspawn does it (veth ve-NAME/host0, --network-bridge, --network-zone,
 * --network-veth-extra, --network-macvlan/--network-ipvlan, --network-interface, --port) through @nspawn/net,
 * plus what systemd leaves to systemd-networkd on both sides: addresses from a pool for the veth (or the zone's
 * bridge), the container's host0 up with an address and a default route before its payload starts (by the
 * helper, from the plan), masquerading and port forwarding in nspawn's own nft table, the name in /etc/hosts
 * while it runs. Everything is recorded under /run/nspawn/net so that a killed nspawn's leftovers are collected
 * by the next start.
 */
import { closeSync, openSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import type { DhcpServer, FdLocker, InterfaceMover, NetRecord, PortProxy, StateOptions, TakenPrefix } from '@nspawn/net';
import type { ContainerExtension, ContainerRun } from '@nspawn/runtime';
import type { NetworkConfig } from '@nspawn/runtime';
import { encodeMoveBack, type NetStep } from '@nspawn/runtime';
import { ContainerError } from '@nspawn/runtime';
import { helperPath } from '@nspawn/runtime';
import { sysAddon } from '@nspawn/runtime';
import { runRecordOf } from '@nspawn/runtime';

/**
 * make_lock_file()'s open-file-description lock on Node's file description, waiting for it: through the runtime's
 * addon, else taken by the helper (a process of its own)
 */
export const helperLocker: FdLocker = (fd) => {
  const addon = sysAddon();
  if (addon) return addon.ofdLockWait(fd);
  // (child_process loaded here, not at start-up: a run without a network must not pay for it)
  const { spawnSync } = process.getBuiltinModule('node:child_process');
  const r = spawnSync(helperPath(), ['--ofd-lock'], { stdio: ['ignore', 'ignore', 'pipe', fd] });
  if (r.status !== 0) throw new Error(`Failed to take a lock: ${r.stderr?.toString().trim() || r.error?.message || `exit ${r.status}`}`);
};

/** move_back_network_interfaces() by the helper: it enters the namespace at fd 3 and moves the links (named on its stdin) to ours */
export const helperMover: InterfaceMover = (fd, ifaces) => {
  const { spawnSync } = process.getBuiltinModule('node:child_process');
  const r = spawnSync(helperPath(), ['--move-back'], { input: encodeMoveBack(ifaces), stdio: ['pipe', 'ignore', 'pipe', fd], encoding: 'utf8' });
  if (r.error) return [r.error];
  return r.status === 0 ? [] : (r.stderr.trim() || `exit ${r.status}`).split('\n').map((l) => new Error(l));
};

interface Addressing {
  /** the interface on the host that carries the subnet (ve-NAME, or vz-ZONE) */
  hostIf: string;
  subnet: { network: string; prefixLength: number };
  hostAddress: string;
  containerAddress: string;
}

interface NetState {
  recordPath?: string;
  record?: NetRecord;
  addressing?: Addressing;
  netnsFd?: number;
  proxy?: PortProxy;
  dhcp?: DhcpServer;
  /** links that exist now (host side), removed by detach */
  links: string[];
  zoneJoined?: string;
  movedIn: string[];
}

export interface NetworkExtensionOptions extends StateOptions {
  /** e.g. a test's own state directory */
  dir?: string;
  /** whether the host's systemd-networkd runs (default: hostNetworkdRuns()) */
  networkdRuns?: () => boolean;
}

/** @nspawn/net (and its native netlink binding) loads only when a container has a network to set up */
type NetModule = typeof import('@nspawn/net');
let netModule: Promise<NetModule> | undefined;
const loadNet = () => (netModule ??= import('@nspawn/net'));

const hasLinks = (n: NetworkConfig) =>
  !!(n.veth || n.vethExtra?.length || n.macvlan?.length || n.ipvlan?.length || n.interfaces?.length);

export function networkExtension(opts: NetworkExtensionOptions = {}): ContainerExtension {
  const so: StateOptions = { locker: helperLocker, zone: { locker: helperLocker }, ...opts };
  const states = new WeakMap<ContainerRun, NetState>();
  const get = (run: ContainerRun): NetState => {
    let s = states.get(run);
    if (!s) states.set(run, (s = { links: [], movedIn: [] }));
    return s;
  };
  // a host whose systemd-networkd runs configures ve-*/vz-* itself (80-container-ve.network, -vz.network): then we
  // make the links only, as systemd-nspawn does, unless told otherwise
  const networkdRuns = opts.networkdRuns ?? hostNetworkdRuns;
  const auto = (n: NetworkConfig) => (n.autoConfigure ?? !networkdRuns()) && n.veth === true && n.bridge === undefined;

  return {
    name: 'network',
    // links, rules and names to remove at the end; a --network-namespace-path= alone is only the plan's
    needed: (cfg) => !!cfg.network && (hasLinks(cfg.network) || !!cfg.network.ports?.length),

    async setup(run) {
      const n = run.cfg.network;
      if (!n) return;
      const net = await loadNet();
      if (n.bridge !== undefined && n.zone !== undefined) throw new ContainerError('--network-bridge= and --network-zone= may not be combined.');
      if (n.namespacePath !== undefined && (hasLinks(n) || n.bridge !== undefined || n.zone !== undefined))
        throw new ContainerError('--network-namespace-path= cannot be combined with other network options.');
      if (!hasLinks(n) && !n.ports?.length) return;
      // checked before anything is made (the command line checks it too; a .nspawn file's Zone= drops a bad one)
      if (n.zone !== undefined && !net.ifnameValid(`vz-${n.zone}`)) throw new ContainerError(`Network zone name not valid: vz-${n.zone}`);
      const st = get(run);
      const machine = run.cfg.machineName;
      // noted in the run's record before anything is made (src/recovery.ts): a later start collects it after a kill -9
      runRecordOf(run.cfg)?.note({ net: true });
      await net.withStateLock(so, async () => {
        const gone = await net.collectLeftovers(so);
        if (gone.length > 0) {
          run.log(`Collected network leftovers of ${gone.join(', ')}.`);
          net.syncShared(so);
        }
        const record: NetRecord = { machine, owner: net.ownerSelf(), links: [], subnets: [], ports: [] };
        // links enter the record once made (attach): a name listed here is one this run created, never another's
        const vethHost = net.shortenIfname((n.bridge !== undefined || n.zone !== undefined ? 'vb-' : 've-') + machine);
        if (n.zone !== undefined) record.zone = n.zone;
        if (auto(n)) {
          const live = net.readRecords(so).map((x) => x.record);
          let addressing: Addressing;
          if (n.zone !== undefined) {
            const bridge = net.zoneBridgeName(n.zone);
            const mates = live.filter((r) => r.zone === n.zone && r.subnets.length > 0);
            const subnet = mates[0]?.subnets[0] ?? net.allocateSubnet(bridge, 24, await takenPrefixes(live)).subnet;
            const used = new Set(mates.map((r) => r.hosts?.address));
            let k = 2;
            while (used.has(net.nthAddress(subnet, k))) k++;
            addressing = { hostIf: bridge, subnet, hostAddress: net.nthAddress(subnet, 1), containerAddress: net.nthAddress(subnet, k) };
          } else {
            const a = net.allocateSubnet(machine, 28, await takenPrefixes(live));
            addressing = { hostIf: vethHost, subnet: a.subnet, hostAddress: a.hostAddress, containerAddress: net.nthAddress(a.subnet, 2) };
          }
          st.addressing = addressing;
          record.subnets.push(addressing.subnet);
          record.masqueradeSubnet = `${addressing.subnet.network}/${addressing.subnet.prefixLength}`;
          record.hostIf = addressing.hostIf;
          record.hosts = { address: addressing.containerAddress, names: [machine] };
          for (const p of n.ports ?? [])
            record.ports.push({ protocol: p.protocol, hostPort: p.hostPort, containerPort: p.containerPort, address: addressing.containerAddress });
        } else if (n.ports?.length) {
          run.log('Warning: --port= needs an address for the container; nspawn configures one only with --network-veth (or --network-zone=): ports are not forwarded.');
        }
        st.record = record;
        st.recordPath = net.writeRecord(so, record);
      });
    },

    plan(run, plan) {
      const n = run.cfg.network;
      if (!n) return;
      if (n.namespacePath !== undefined) plan.net = { ...(plan.net ?? { steps: [] }), netns: n.namespacePath };
      if (!hasLinks(n)) return;
      plan.sync = true;
      const a = states.get(run)?.addressing;
      if (!a) return;
      const steps: NetStep[] = [
        { kind: 'up', ifname: 'host0' },
        { kind: 'address', ifname: 'host0', family: 4, address: a.containerAddress, prefixLength: a.subnet.prefixLength },
        { kind: 'route', ifname: 'host0', family: 4, gateway: a.hostAddress },
      ];
      plan.net = { ...(plan.net ?? {}), steps };
    },

    async attach(run, pid) {
      const n = run.cfg.network;
      if (!n || !hasLinks(n)) return;
      const net = await loadNet();
      const st = get(run);
      const machine = run.cfg.machineName;
      const warn = (l: string) => run.log(l);
      const rtnl = new net.Rtnl();
      try {
        // the container's namespace stays open until detach: interfaces go back from it after its end
        st.netnsFd = openSync(`/proc/${pid}/ns/net`, 'r');
        if (n.interfaces?.length) {
          await net.moveInterfaces(pid, n.interfaces, { rtnl });
          st.movedIn = [...n.interfaces];
        }
        if (n.veth) {
          const bridged = n.bridge !== undefined || n.zone !== undefined;
          const v = await net.createVeth(machine, pid, { rtnl, bridged, warn });
          st.links.push(v.host);
          const a = st.addressing;
          if (n.bridge !== undefined) await net.joinBridge(v.host, n.bridge, { rtnl });
          else if (n.zone !== undefined) {
            await net.joinZone(v.host, n.zone, {
              rtnl,
              ...(so.zone ?? {}),
              onCreate: async (bridge, r) => {
                if (a) await r.addAddress(bridge, 4, a.hostAddress, a.subnet.prefixLength, { broadcast: broadcastOf(a.subnet) });
              },
            });
            st.zoneJoined = n.zone;
          } else if (a) {
            await rtnl.addAddress(v.host, 4, a.hostAddress, a.subnet.prefixLength, { broadcast: broadcastOf(a.subnet) });
            if (n.ports?.length) writeFileSync(`/proc/sys/net/ipv4/conf/${v.host}/route_localnet`, '1');
            await rtnl.setUp(v.host);
          }
          // a zone bridge that someone else created (or an earlier run of ours) may lack the address
          if (a && n.zone !== undefined) {
            const have = (await rtnl.getAddresses()).some((x) => x.address === a.hostAddress);
            if (!have) await rtnl.addAddress(a.hostIf, 4, a.hostAddress, a.subnet.prefixLength, { broadcast: broadcastOf(a.subnet) });
            if (n.ports?.length) writeFileSync(`/proc/sys/net/ipv4/conf/${a.hostIf}/route_localnet`, '1');
          }
        }
        // a DHCP client in the container (networkd, udhcpc) gets the same address (net/src/dhcp.ts)
        const a = st.addressing;
        if (a && st.links.length > 0) {
          const containerMac = net.generateMac(machine, 'container');
          await rtnl.addNeighbor(a.hostIf, a.containerAddress, containerMac);
          st.dhcp = await net
            .startDhcpServer({
              serverAddress: a.hostAddress,
              prefixLength: a.subnet.prefixLength,
              leases: [{ mac: containerMac, address: a.containerAddress }],
              dns: hostNameservers(),
            })
            .catch((e: Error) => {
              run.log(`Warning: no DHCP server for the container: ${e.message}`);
              return undefined;
            });
        }
        if (n.vethExtra?.length) {
          const pairs = n.vethExtra.map((e) => net.parseVethExtra(e));
          const made = await net.createVethExtra(machine, pid, pairs, { rtnl });
          st.links.push(...made.map((m) => m.host));
        }
        if (n.macvlan?.length) await net.createMacvlan(machine, pid, n.macvlan, { rtnl, warn });
        if (n.ipvlan?.length) await net.createIpvlan(pid, n.ipvlan, { rtnl, warn });
      } finally {
        rtnl.close();
        if (st.record && st.recordPath) {
          st.record.links = [...st.links];
          // nspawnd's container outlives nspawnd: its links are in use as long as its helper runs
          const survivor = runRecordOf(run.cfg)?.record.survivor;
          if (survivor) st.record.survivor = { pid: survivor.pid, startTime: String(survivor.startTime) };
          net.writeRecord(so, st.record);
        }
      }
      if (st.record && (st.record.masqueradeSubnet || st.record.ports.length || st.record.hosts)) {
        const errs = await net.withStateLock(so, async () => net.syncShared(so));
        if (errs.nft && st.record.ports.length > 0) throw new Error(`Failed to set up port forwarding: ${errs.nft.message}`);
        if (errs.nft) run.log(`Warning: no masquerading for the container (it reaches the host only): ${errs.nft.message}`);
        if (errs.hosts) run.log(`Warning: the container's name will not resolve on the host: ${errs.hosts.message}`);
        if (errs.ipForward) run.log(`Warning: cannot turn on IPv4 forwarding: ${errs.ipForward.message}`);
        if (st.record.ports.length > 0)
          st.proxy = await net.startIpv6Proxy(st.record.ports, (e) => run.log(`port forwarding (IPv6): ${e.message}`)).catch((e: Error) => {
            run.log(`Warning: cannot forward ports on IPv6: ${e.message}`);
            return undefined;
          });
      }
    },

    async detach(run) {
      const st = states.get(run);
      if (!st) return;
      const net = await loadNet();
      const errors: string[] = [];
      await st.proxy?.close();
      delete st.proxy;
      st.dhcp?.close();
      delete st.dhcp;
      if (st.netnsFd !== undefined) {
        if (st.movedIn.length > 0) {
          const errs = await net.moveInterfacesBack(st.netnsFd, st.movedIn, { mover: helperMover });
          for (const e of errs) errors.push(e.message);
          st.movedIn = [];
        }
        closeSync(st.netnsFd);
        delete st.netnsFd;
      }
      await net.removeLinks(st.links).catch((e: Error) => errors.push(e.message));
      st.links = [];
      if (st.record && st.recordPath) {
        st.record.links = [];
        net.writeRecord(so, st.record);
      }
      if (st.zoneJoined !== undefined) {
        const zone = st.zoneJoined;
        const removed = await net.leaveZone(zone, so.zone ?? {}).catch((e: Error) => (errors.push(e.message), false));
        delete st.zoneJoined;
        // the bridge stays for other members (systemd-nspawn's, say): our address on it goes when no container of
        // ours is left in the zone
        const a = st.addressing;
        if (!removed && a) {
          await net
            .withStateLock(so, async () => {
              const others = net.readRecords(so).filter((x) => x.path !== st.recordPath && x.record.zone === zone);
              if (others.length > 0) return;
              const r = new net.Rtnl();
              try {
                await r.delAddress(a.hostIf, 4, a.hostAddress, a.subnet.prefixLength);
              } finally {
                r.close();
              }
            })
            .catch((e: Error) => errors.push(e.message));
        }
      }
      if (errors.length > 0) throw new Error(errors.join('; '));
    },

    async teardown(run) {
      const st = states.get(run);
      if (!st?.recordPath) return;
      const net = await loadNet();
      const path = st.recordPath;
      delete st.recordPath;
      await net.withStateLock(so, async () => {
        // links of a boot that never got to detach (and the zone) are in the record: collected with it
        if (st.record) {
          await net.removeLinks(st.links).catch(() => {});
          if (st.record.zone !== undefined) await net.leaveZone(st.record.zone, so.zone ?? {}).catch(() => false);
        }
        net.removeRecord(path);
        const errs = net.syncShared(so);
        for (const e of Object.values(errs)) if (e) run.log(`network: ${e.message}`);
      });
    },
  };
}

function broadcastOf(s: { network: string; prefixLength: number }): string {
  const n = s.network.split('.').reduce((a, x) => a * 256 + Number(x), 0) >>> 0;
  const b = (n | (2 ** (32 - s.prefixLength) - 1)) >>> 0;
  return [24, 16, 8, 0].map((x) => (b >>> x) & 255).join('.');
}

/** the host's addresses' networks, its IPv4 routes, and the live records' subnets */
async function takenPrefixes(live: NetRecord[]): Promise<TakenPrefix[]> {
  const net = await loadNet();
  const r = new net.Rtnl();
  try {
    const out: TakenPrefix[] = [];
    for (const a of await r.getAddresses()) if (a.family === 4 && !a.address.startsWith('127.')) out.push({ address: a.address, prefixLength: a.prefixLength });
    for (const rt of await r.getRoutes4()) if (rt.prefixLength > 0 && !rt.dst.startsWith('127.')) out.push({ address: rt.dst, prefixLength: rt.prefixLength });
    for (const rec of live) for (const s of rec.subnets) out.push({ address: s.network, prefixLength: s.prefixLength });
    return out;
  } finally {
    r.close();
  }
}

/** the host's IPv4 name servers a container can reach through masquerading (loopback ones cannot be) */
function hostNameservers(): string[] {
  try {
    return readFileSync('/etc/resolv.conf', 'utf8')
      .split('\n')
      .map((l) => /^\s*nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*$/.exec(l)?.[1])
      .filter((x): x is string => x !== undefined && !x.startsWith('127.'));
  } catch {
    return [];
  }
}

/**
 * For a daemon or a cron job: removes what killed nspawn processes left behind (their links, empty zones, nft rules,
 * hosts lines, ip_forward) and returns the machines whose leftovers went.
 */
export async function collectNetworkLeftovers(opts: NetworkExtensionOptions = {}): Promise<string[]> {
  const net = await loadNet();
  const so: StateOptions = { locker: helperLocker, zone: { locker: helperLocker }, ...opts };
  return net.withStateLock(so, async () => {
    const gone = await net.collectLeftovers(so);
    net.syncShared(so);
    return gone;
  });
}

/** whether a systemd-networkd runs in our network namespace (a container's own networkd does not count) */
export function hostNetworkdRuns(): boolean {
  let self: string;
  try {
    self = readlinkSync('/proc/self/ns/net');
  } catch {
    return false;
  }
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/comm`, 'utf8') === 'systemd-network\n' && readlinkSync(`/proc/${d}/ns/net`) === self) return true;
    } catch {
      /* gone, or not ours to read */
    }
  }
  return false;
}
