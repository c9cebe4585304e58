/**
 * Networking of a container, as systemd-nspawn does it (veth ve-NAME/host0, --network-bridge, --network-zone,
 * --network-veth-extra, --network-macvlan/--network-ipvlan, --network-interface, --port) through @nspawn/net,
 * plus what systemd leaves to systemd-networkd on both sides: addresses from a pool for the veth (or the zone's
 * bridge), the container's host0 up with an address and a default route before its payload starts (by the
 * helper, from the plan), masquerading and port forwarding in nspawn's own nft table, the name in /etc/hosts
 * while it runs. Everything is recorded under /run/nspawn/net so that a killed nspawn's leftovers are collected
 * by the next start.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import type { AppliedNetwork, FdLocker, HostFacts, InterfaceMover, NetPlan, NetRequest, PortProxy, StateOptions } from '@nspawn/net';
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

interface NetState {
  recordPath?: string;
  /** @nspawn/net's plan for this container (made in setup, under the state lock) */
  plan?: NetPlan;
  /** what attach made of it: exactly what detach removes */
  applied: AppliedNetwork;
  proxy?: PortProxy;
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

/** the host side of each run's network: what machined is told (see hostInterfaceOf()) */
const hostSides = new WeakMap<ContainerRun, string>();

/**
 * The host-side interface of RUN's network, as systemd-nspawn 252 tells machined (NetworkInterfaces): the bridge
 * or zone bridge the veth joins, else the veth's host side (ve-NAME); undefined without a veth.
 */
export function hostInterfaceOf(run: ContainerRun): string | undefined {
  return hostSides.get(run);
}

const hasLinks = (n: NetworkConfig) =>
  !!(n.veth || n.vethExtra?.length || n.macvlan?.length || n.ipvlan?.length || n.interfaces?.length);

export function networkExtension(opts: NetworkExtensionOptions = {}): ContainerExtension {
  const so: StateOptions = { locker: helperLocker, zone: { locker: helperLocker }, ...opts };
  const states = new WeakMap<ContainerRun, NetState>();
  const get = (run: ContainerRun): NetState => {
    let s = states.get(run);
    if (!s) states.set(run, (s = { applied: { links: [], movedIn: [] } }));
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
      const req = requestOf(run.cfg.machineName, n, auto(n));
      // checked before anything is made (the command line checks it too; a .nspawn file's Zone= drops a bad one)
      asContainerError(() => net.checkNetRequest(req));
      const st = get(run);
      // noted in the run's record before anything is made (src/recovery.ts): a later start collects it after a kill -9
      runRecordOf(run.cfg)?.note({ net: true });
      await net.withStateLock(so, async () => {
        const gone = await net.collectLeftovers(so);
        if (gone.length > 0) {
          run.log(`Collected network leftovers of ${gone.join(', ')}.`);
          net.syncShared(so);
        }
        // links enter the record once made (attach): a name listed there is one this run created, never another's
        const live = net.readRecords(so).map((x) => x.record);
        // (the host's addresses and routes are read only when an address is to be chosen)
        const facts: HostFacts = req.configure ? await net.readHostFacts(live) : { addresses: [], routes: [], records: live, owner: net.ownerSelf() };
        const plan = asContainerError(() => net.planNetwork(req, facts));
        for (const w of plan.warnings) run.log(w);
        st.plan = plan;
        const v = plan.veth;
        if (v) hostSides.set(run, v.bridged ? (v.bridge ?? v.zoneBridge ?? v.host) : v.host);
        st.recordPath = net.writeRecord(so, plan.record);
      });
    },

    plan(run, plan) {
      const n = run.cfg.network;
      if (!n) return;
      if (n.namespacePath !== undefined) plan.net = { ...(plan.net ?? { steps: [] }), netns: n.namespacePath };
      if (!hasLinks(n)) return;
      plan.sync = true;
      const steps: NetStep[] = states.get(run)?.plan?.container ?? [];
      if (steps.length === 0) return;
      // the helper's child does these in the container's namespace after the sync point (Node cannot enter it)
      plan.net = { ...(plan.net ?? {}), steps: steps.map((x) => ({ ...x })) };
    },

    async attach(run, pid) {
      const n = run.cfg.network;
      if (!n || !hasLinks(n)) return;
      const st = get(run);
      if (!st.plan) return;
      const net = await loadNet();
      const warn = (l: string) => run.log(l);
      const fx = net.netlinkEffects({ warn, ...(so.zone ? { zone: so.zone } : {}), mover: helperMover, configureContainer: false });
      const record = st.plan.record;
      try {
        await net.applyNetworkPlan(st.plan, pid, fx, st.applied, { warn });
      } finally {
        fx.close();
        if (st.recordPath) {
          record.links = [...st.applied.links];
          // nspawnd's container outlives nspawnd: its links are in use as long as its helper runs
          const survivor = runRecordOf(run.cfg)?.record.survivor;
          if (survivor) record.survivor = { pid: survivor.pid, startTime: String(survivor.startTime) };
          net.writeRecord(so, record);
        }
      }
      if (st.recordPath && (record.masqueradeSubnet || record.ports.length || record.hosts)) {
        const errs = await net.withStateLock(so, async () => net.syncShared(so));
        if (errs.nft && record.ports.length > 0) throw new Error(`Failed to set up port forwarding: ${errs.nft.message}`);
        if (errs.nft) run.log(`Warning: no masquerading for the container (it reaches the host only): ${errs.nft.message}`);
        if (errs.hosts) run.log(`Warning: the container's name will not resolve on the host: ${errs.hosts.message}`);
        if (errs.ipForward) run.log(`Warning: cannot turn on IPv4 forwarding: ${errs.ipForward.message}`);
        if (record.ports.length > 0)
          st.proxy = await net.startIpv6Proxy(record.ports, (e) => run.log(`port forwarding (IPv6): ${e.message}`)).catch((e: Error) => {
            run.log(`Warning: cannot forward ports on IPv6: ${e.message}`);
            return undefined;
          });
      }
    },

    async detach(run) {
      const st = states.get(run);
      if (!st) return;
      const net = await loadNet();
      await st.proxy?.close();
      delete st.proxy;
      if (!st.plan) return;
      const plan = st.plan;
      const fx = net.netlinkEffects({ ...(so.zone ? { zone: so.zone } : {}), mover: helperMover, configureContainer: false });
      // the bridge stays for other members (systemd-nspawn's, say): our address on it goes when no container of
      // ours is left in the zone
      const errors = await net.undoNetworkPlan(plan, st.applied, fx, { zoneAddress: net.zoneAddressKeeper(so, st.recordPath, st.applied.zoneJoined) });
      fx.close();
      if (st.recordPath) {
        plan.record.links = [];
        net.writeRecord(so, plan.record);
      }
      if (errors.length > 0) throw new Error(errors.map((e) => e.message).join('; '));
    },

    async teardown(run) {
      const st = states.get(run);
      if (!st?.recordPath) return;
      const net = await loadNet();
      const path = st.recordPath;
      delete st.recordPath;
      await net.withStateLock(so, async () => {
        // links of a boot that never got to detach (and the zone) are in the record: collected with it
        if (st.plan) {
          await net.removeLinks(st.applied.links).catch(() => {});
          if (st.plan.record.zone !== undefined) await net.leaveZone(st.plan.record.zone, so.zone ?? {}).catch(() => false);
        }
        net.removeRecord(path);
        const errs = net.syncShared(so);
        for (const e of Object.values(errs)) if (e) run.log(`network: ${e.message}`);
      });
    },
  };
}

/** the container's network options as @nspawn/net's request */
function requestOf(machine: string, n: NetworkConfig, configure: boolean): NetRequest {
  const req: NetRequest = { machine, configure };
  if (n.veth) req.veth = true;
  if (n.vethExtra?.length) req.vethExtra = n.vethExtra;
  if (n.bridge !== undefined) req.bridge = n.bridge;
  if (n.zone !== undefined) req.zone = n.zone;
  if (n.macvlan?.length) req.macvlan = n.macvlan;
  if (n.ipvlan?.length) req.ipvlan = n.ipvlan;
  if (n.interfaces?.length) req.interfaces = n.interfaces;
  if (n.ports?.length) req.ports = n.ports.map((p) => ({ protocol: p.protocol, hostPort: p.hostPort, containerPort: p.containerPort }));
  return req;
}

/** @nspawn/net's refusal of a request as the runtime's error (same message) */
function asContainerError<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if ((e as Error).name === 'NetPlanError') throw new ContainerError((e as Error).message);
    throw e;
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
