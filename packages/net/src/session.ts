/**
 * The whole of a container's network in two calls, for a program that uses @nspawn/net alone: startNetwork()
 * collects dead containers' leftovers, reads the host's facts, plans, records, applies the plan (the container's
 * side included, through nsenter and ip), and syncs the shared pieces (nft masquerading and DNAT, the hosts
 * block, ip_forward); the returned handle's close() undoes exactly that. @nspawn/runtime uses the same pieces
 * (readHostFacts, planNetwork, applyNetworkPlan, undoNetworkPlan) split over a container's start.
 */
import { readFileSync } from 'node:fs';
import { applyNetworkPlan, netlinkEffects, undoNetworkPlan, type AppliedNetwork, type NetEffects, type NetlinkEffectsOptions } from './apply.js';
import { Rtnl } from './netlink.js';
import { planNetwork, type HostFacts, type NetPlan, type NetRequest } from './plan.js';
import { startIpv6Proxy, type PortProxy } from './proxy.js';
import { collectLeftovers, ownerSelf, readRecords, removeRecord, syncShared, withStateLock, writeRecord, type NetRecord, type StateOptions } from './state.js';

/** the host's IPv4 name servers a container can reach through masquerading (loopback ones cannot be) */
export function hostNameservers(path = '/etc/resolv.conf'): string[] {
  try {
    return readFileSync(path, 'utf8')
      .split('\n')
      .map((l) => /^\s*nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*$/.exec(l)?.[1])
      .filter((x): x is string => x !== undefined && !x.startsWith('127.'));
  } catch {
    return [];
  }
}

/** the host's facts for planNetwork(): its IPv4 addresses and routes (netlink), RECORDS, name servers, this process as owner */
export async function readHostFacts(records: NetRecord[], o: { rtnl?: Rtnl } = {}): Promise<HostFacts> {
  const r = o.rtnl ?? new Rtnl();
  try {
    const addresses = (await r.getAddresses()).filter((a) => a.family === 4).map((a) => ({ address: a.address, prefixLength: a.prefixLength }));
    const routes = (await r.getRoutes4()).map((x) => ({ address: x.dst, prefixLength: x.prefixLength }));
    return { addresses, routes, records, owner: ownerSelf(), nameservers: hostNameservers() };
  } finally {
    if (!o.rtnl) r.close();
  }
}

/**
 * undoNetworkPlan()'s zoneAddress hook for a record of the state directory: our address leaves a zone's bridge
 * (which stays for other members, systemd-nspawn's say) only when no other record of ours is in the zone.
 */
export function zoneAddressKeeper(o: StateOptions, recordPath: string | undefined, zone: string | undefined): (del: () => Promise<void>) => Promise<void> {
  return (del) =>
    withStateLock(o, async () => {
      const others = readRecords(o).filter((x) => x.path !== recordPath && x.record.zone === zone);
      if (others.length === 0) await del();
    });
}

export interface StartNetworkOptions extends StateOptions {
  /** the effects' options (warn, machineId, mover, zone lock) */
  effects?: NetlinkEffectsOptions;
  /** effects to use instead of netlinkEffects() */
  fx?: NetEffects;
  /** warnings and what was collected */
  log?: (line: string) => void;
}

export interface NetworkSession {
  plan: NetPlan;
  applied: AppliedNetwork;
  /** the record's path under the state directory */
  recordPath: string;
  /** undoes everything: proxy, DHCP, links, zone, record, then the shared pieces again */
  close(): Promise<void>;
}

/**
 * Sets up REQ for the container whose process is PID (its network namespace); on failure, what was made is
 * removed before the error is thrown.
 */
export async function startNetwork(req: NetRequest, pid: number, o: StartNetworkOptions = {}): Promise<NetworkSession> {
  const log = o.log ?? (() => {});
  const { plan, recordPath } = await withStateLock(o, async () => {
    const gone = await collectLeftovers(o);
    if (gone.length > 0) {
      log(`Collected network leftovers of ${gone.join(', ')}.`);
      syncShared(o);
    }
    const plan = planNetwork(req, await readHostFacts(readRecords(o).map((x) => x.record)));
    return { plan, recordPath: writeRecord(o, plan.record) };
  });
  for (const w of plan.warnings) log(w);
  const fx = o.fx ?? netlinkEffects({ ...(o.effects ?? {}), ...(o.effects?.warn ? {} : { warn: log }) });
  const applied: AppliedNetwork = { links: [], movedIn: [] };
  let proxy: PortProxy | undefined;
  const close = async () => {
    await proxy?.close();
    proxy = undefined;
    const errors = await undoNetworkPlan(plan, applied, fx, { zoneAddress: zoneAddressKeeper(o, recordPath, plan.record.zone) });
    fx.close();
    await withStateLock(o, async () => {
      removeRecord(recordPath);
      const e = syncShared(o);
      if (e.nft) errors.push(e.nft);
      if (e.hosts) errors.push(e.hosts);
    });
    if (errors.length > 0) throw new Error(errors.map((e) => e.message).join('; '));
  };
  try {
    try {
      await applyNetworkPlan(plan, pid, fx, applied, { warn: log });
    } finally {
      plan.record.links = [...applied.links];
      writeRecord(o, plan.record);
    }
    const r = plan.record;
    if (r.masqueradeSubnet || r.ports.length || r.hosts) {
      const errs = await withStateLock(o, async () => syncShared(o));
      if (errs.nft) throw new Error(`Failed to set up masquerading and port forwarding: ${errs.nft.message}`);
      if (errs.hosts) log(`Warning: the container's name will not resolve on the host: ${errs.hosts.message}`);
      if (errs.ipForward) log(`Warning: cannot turn on IPv4 forwarding: ${errs.ipForward.message}`);
      if (r.ports.length > 0) proxy = await startIpv6Proxy(r.ports, (e) => log(`port forwarding (IPv6): ${e.message}`));
    }
  } catch (e) {
    await close().catch(() => {});
    throw e;
  }
  return { plan, applied, recordPath, close };
}
