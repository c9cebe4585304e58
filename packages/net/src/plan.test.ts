import { describe, expect, it } from 'vitest';
import { allocateSubnet, ip4ToInt } from './pool.js';
import { planNetwork, NetPlanError, type HostFacts } from './plan.js';
import { applyNetworkPlan, undoNetworkPlan, type NetEffects } from './apply.js';
import { generateMac } from './naming.js';
import type { NetRecord } from './state.js';

const MID = '0123456789abcdef0123456789abcdef';
const facts = (f: Partial<HostFacts> = {}): HostFacts => ({ addresses: [], routes: [], records: [], machineId: MID, owner: { pid: 42, startTime: '7' }, ...f });
const inSubnet = (addr: string, net: string, plen: number) => ip4ToInt(addr) >>> (32 - plen) === ip4ToInt(net) >>> (32 - plen);
const rec = (r: Partial<NetRecord>): NetRecord => ({ machine: 'x', owner: { pid: 1, startTime: '1' }, links: [], subnets: [], ports: [], ...r });

describe('planNetwork: a veth', () => {
  it('gets the machine name\'s /28 from the pool: host .1, container .2, default route via the host', () => {
    const p = planNetwork({ machine: 'foo', veth: true }, facts());
    const want = allocateSubnet('foo', 28, []).subnet;
    expect(p.addressing).toMatchObject({ hostIf: 've-foo', subnet: want });
    const base = ip4ToInt(want.network);
    expect(ip4ToInt(p.addressing!.hostAddress)).toBe(base + 1);
    expect(ip4ToInt(p.addressing!.containerAddress)).toBe(base + 2);
    expect(ip4ToInt(p.addressing!.broadcast)).toBe(base + 15);
    expect(p.veth).toEqual({
      host: 've-foo',
      container: 'host0',
      hostMac: generateMac('foo', 'host', { machineId: MID }),
      containerMac: generateMac('foo', 'container', { machineId: MID }),
      bridged: false,
    });
    expect(p.container).toEqual([
      { kind: 'up', ifname: 'host0' },
      { kind: 'address', ifname: 'host0', family: 4, address: p.addressing!.containerAddress, prefixLength: 28 },
      { kind: 'route', ifname: 'host0', family: 4, gateway: p.addressing!.hostAddress },
    ]);
    expect(p.hostAddress).toEqual({ ifname: 've-foo', address: p.addressing!.hostAddress, prefixLength: 28, broadcast: p.addressing!.broadcast, zone: false });
    expect(p.record).toEqual({
      machine: 'foo',
      owner: { pid: 42, startTime: '7' },
      links: [],
      subnets: [want],
      ports: [],
      masqueradeSubnet: `${want.network}/28`,
      hostIf: 've-foo',
      hosts: { address: p.addressing!.containerAddress, names: ['foo'] },
    });
    expect(p.dhcp).toEqual({ serverAddress: p.addressing!.hostAddress, prefixLength: 28, leases: [{ mac: p.veth!.containerMac, address: p.addressing!.containerAddress }], dns: [] });
    expect(p.neighbor).toEqual({ ifname: 've-foo', address: p.addressing!.containerAddress, mac: p.veth!.containerMac });
    expect(p.warnings).toEqual([]);
  });

  it('is the same plan on every call with the same facts (pure)', () => {
    const f = facts({ routes: [{ address: '10.0.0.0', prefixLength: 24 }] });
    expect(planNetwork({ machine: 'bar', veth: true, ports: [{ protocol: 'tcp', hostPort: 8080, containerPort: 80 }] }, f)).toEqual(
      planNetwork({ machine: 'bar', veth: true, ports: [{ protocol: 'tcp', hostPort: 8080, containerPort: 80 }] }, f),
    );
  });

  it('skips a subnet the host has an address in, a route to, or another container records', () => {
    const first = allocateSubnet('foo', 28, []).subnet;
    for (const taken of [
      facts({ addresses: [{ address: ip4ToIntStr(ip4ToInt(first.network) + 5), prefixLength: 30 }] }),
      facts({ routes: [{ address: first.network, prefixLength: 16 }] }),
      facts({ records: [rec({ subnets: [first] })] }),
    ]) {
      const p = planNetwork({ machine: 'foo', veth: true }, taken);
      expect(p.addressing!.subnet.network).not.toBe(first.network);
      expect(p.addressing!.subnet.prefixLength).toBe(28);
    }
  });

  it('ignores loopback and default routes', () => {
    const first = allocateSubnet('foo', 28, []).subnet;
    const p = planNetwork({ machine: 'foo', veth: true }, facts({ addresses: [{ address: '127.0.0.1', prefixLength: 8 }], routes: [{ address: '0.0.0.0', prefixLength: 0 }] }));
    expect(p.addressing!.subnet).toEqual(first);
  });

  it('goes on to 172.16/12 when 10/8 is all taken', () => {
    const p = planNetwork({ machine: 'foo', veth: true }, facts({ routes: [{ address: '10.0.0.0', prefixLength: 8 }] }));
    expect(inSubnet(p.addressing!.subnet.network, '172.16.0.0', 12)).toBe(true);
  });

  it('a shortened name: the full one as altname, and the shortened one carries the subnet', () => {
    const p = planNetwork({ machine: 'averyveryverylongmachinename01', veth: true }, facts());
    expect(p.veth!.host).toBe('ve-averyverJKA6');
    expect(p.veth!.altname).toBe('ve-averyveryverylongmachinename01');
    expect(p.addressing!.hostIf).toBe('ve-averyverJKA6');
  });

  it('configure: false makes the links only (systemd-nspawn), and says ports are not forwarded', () => {
    const p = planNetwork({ machine: 'foo', veth: true, configure: false, ports: [{ protocol: 'tcp', hostPort: 1, containerPort: 2 }] }, facts());
    expect(p.veth!.host).toBe('ve-foo');
    expect(p.addressing).toBeUndefined();
    expect(p.container).toEqual([]);
    expect(p.dhcp).toBeUndefined();
    expect(p.record.ports).toEqual([]);
    expect(p.record.masqueradeSubnet).toBeUndefined();
    expect(p.warnings).toEqual([expect.stringMatching(/^Warning: --port= needs an address/)]);
  });
});

describe('planNetwork: ports', () => {
  it('forward to the container\'s address, with route_localnet on the host side', () => {
    const p = planNetwork(
      { machine: 'web', veth: true, ports: [{ protocol: 'tcp', hostPort: 8080, containerPort: 80 }, { protocol: 'udp', hostPort: 53, containerPort: 5353 }] },
      facts(),
    );
    const c = p.addressing!.containerAddress;
    expect(p.record.ports).toEqual([
      { protocol: 'tcp', hostPort: 8080, containerPort: 80, address: c },
      { protocol: 'udp', hostPort: 53, containerPort: 5353, address: c },
    ]);
    expect(p.routeLocalnet).toEqual(['ve-web']);
  });
  it('without a veth (macvlan only): not forwarded, with a warning', () => {
    const p = planNetwork({ machine: 'web', macvlan: ['eth9'], ports: [{ protocol: 'tcp', hostPort: 8080, containerPort: 80 }] }, facts());
    expect(p.record.ports).toEqual([]);
    expect(p.macvlan).toEqual(['eth9']);
    expect(p.warnings).toHaveLength(1);
  });
});

describe('planNetwork: zones and bridges', () => {
  it('the first member of a zone: a /24 for vz-ZONE, host .1 on the bridge, container .2', () => {
    const p = planNetwork({ machine: 'a', veth: true, zone: 'lab' }, facts());
    const want = allocateSubnet('vz-lab', 24, []).subnet;
    expect(p.veth).toMatchObject({ host: 'vb-a', bridged: true, zone: 'lab', zoneBridge: 'vz-lab' });
    expect(p.addressing).toMatchObject({ hostIf: 'vz-lab', subnet: want });
    expect(ip4ToInt(p.addressing!.containerAddress)).toBe(ip4ToInt(want.network) + 2);
    expect(p.hostAddress).toMatchObject({ ifname: 'vz-lab', zone: true });
    expect(p.record.zone).toBe('lab');
    expect(p.neighbor!.ifname).toBe('vz-lab');
  });
  it('a later member shares the zone\'s subnet and takes the next free address', () => {
    const s = { network: '10.9.8.0', prefixLength: 24 };
    const mates = [rec({ zone: 'lab', subnets: [s], hosts: { address: '10.9.8.2', names: ['a'] } }), rec({ zone: 'lab', subnets: [s], hosts: { address: '10.9.8.3', names: ['b'] } })];
    const other = rec({ zone: 'other', subnets: [{ network: '10.1.1.0', prefixLength: 24 }], hosts: { address: '10.1.1.2', names: ['o'] } });
    const p = planNetwork({ machine: 'c', veth: true, zone: 'lab' }, facts({ records: [other, ...mates] }));
    expect(p.addressing).toMatchObject({ hostIf: 'vz-lab', subnet: s, hostAddress: '10.9.8.1', containerAddress: '10.9.8.4' });
  });
  it('a bridge: vb-NAME joins it, no address (the bridge\'s owner addresses it)', () => {
    const p = planNetwork({ machine: 'a', veth: true, bridge: 'br0' }, facts());
    expect(p.veth).toMatchObject({ host: 'vb-a', bridged: true, bridge: 'br0' });
    expect(p.addressing).toBeUndefined();
    expect(p.record.subnets).toEqual([]);
  });
  it('refuses a bridge with a zone, and a zone that makes no interface name', () => {
    expect(() => planNetwork({ machine: 'a', veth: true, bridge: 'br0', zone: 'z' }, facts())).toThrow(new NetPlanError('--network-bridge= and --network-zone= may not be combined.'));
    expect(() => planNetwork({ machine: 'a', veth: true, zone: 'waytoolongzonename' }, facts())).toThrow('Network zone name not valid: vz-waytoolongzonename');
  });
  it('lists every link by its names, in the order they are made', () => {
    const p = planNetwork(
      { machine: 'averyveryverylongmachinename01', veth: true, zone: 'lab', interfaces: ['nt-d0'], vethExtra: ['nt-x:nt-y'], macvlan: ['eth9', 'eth8:inside0'], ipvlan: ['averyverylongif'] },
      facts(),
    );
    expect(p.links).toEqual([
      { kind: 'moved', host: 'nt-d0', container: 'nt-d0' },
      { kind: 'veth', host: 'vb-averyverv_wp', container: 'host0', altname: 'vb-averyveryverylongmachinename01' },
      { kind: 'veth-extra', host: 'nt-x', container: 'nt-y' },
      { kind: 'macvlan', container: 'mv-eth9', parent: 'eth9' },
      { kind: 'macvlan', container: 'inside0', parent: 'eth8' },
      { kind: 'ipvlan', container: 'iv-averyverDT69', parent: 'averyverylongif' },
    ]);
  });
  it('refuses a bad --network-veth-extra=', () => {
    expect(() => planNetwork({ machine: 'a', vethExtra: ['a:b:c'] }, facts())).toThrow(NetPlanError);
    expect(planNetwork({ machine: 'a', vethExtra: ['x1:y1', 'x2'] }, facts()).vethExtra).toEqual([
      { host: 'x1', container: 'y1' },
      { host: 'x2', container: 'x2' },
    ]);
  });
});

function ip4ToIntStr(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
}

/** a recording double of the effects */
function recorder(fail?: string) {
  const calls: string[] = [];
  const step = (s: string) => {
    calls.push(s);
    if (fail && s.startsWith(fail)) throw new Error(`failed: ${s}`);
  };
  const fx: NetEffects = {
    openNetns: (pid) => (step(`openNetns ${pid}`), 99),
    closeNetns: (fd) => step(`closeNetns ${fd}`),
    moveIn: async (pid, i) => step(`moveIn ${pid} ${i.join(',')}`),
    moveBack: async (fd, i) => (step(`moveBack ${fd} ${i.join(',')}`), []),
    createVeth: async (m, pid, b) => (step(`createVeth ${m} ${pid} ${b}`), b ? `vb-${m}` : `ve-${m}`),
    joinBridge: async (i, b) => step(`joinBridge ${i} ${b}`),
    joinZone: async (i, z, onCreate) => {
      step(`joinZone ${i} ${z}`);
      await onCreate(`vz-${z}`);
    },
    leaveZone: async (z) => (step(`leaveZone ${z}`), false),
    addAddress: async (a) => step(`addAddress ${a.ifname} ${a.address}/${a.prefixLength} brd ${a.broadcast}`),
    hasAddress: async (a) => (step(`hasAddress ${a}`), true),
    delAddress: async (a) => step(`delAddress ${a.ifname} ${a.address}`),
    setUp: async (i) => step(`setUp ${i}`),
    setRouteLocalnet: (i) => step(`routeLocalnet ${i}`),
    addNeighbor: async (i, a, m) => step(`addNeighbor ${i} ${a} ${m}`),
    startDhcp: async (o) => (step(`startDhcp ${o.serverAddress}`), { close: () => step('dhcp.close'), replies: 0 }),
    createVethExtra: async (m, pid, pairs) => (step(`createVethExtra ${pairs.map((p) => p.host).join(',')}`), pairs.map((p) => p.host)),
    createMacvlan: async (m, pid, i) => step(`createMacvlan ${i.join(',')}`),
    createIpvlan: async (pid, i) => step(`createIpvlan ${i.join(',')}`),
    removeLinks: async (n) => step(`removeLinks ${n.join(',')}`),
    configureContainer: async (pid, s) => step(`configureContainer ${pid} ${s.map((x) => x.kind).join(',')}`),
    close: () => step('close'),
  };
  return { calls, fx };
}

describe('applyNetworkPlan / undoNetworkPlan (recording effects)', () => {
  it('makes a veth plan in systemd-nspawn\'s order, and the undo removes exactly that', async () => {
    const p = planNetwork({ machine: 'foo', veth: true, vethExtra: ['nt-x'], interfaces: ['nt-d'], ports: [{ protocol: 'tcp', hostPort: 1, containerPort: 2 }] }, facts());
    const a = p.addressing!;
    const { calls, fx } = recorder();
    const applied = await applyNetworkPlan(p, 1234, fx);
    expect(calls).toEqual([
      'openNetns 1234',
      'moveIn 1234 nt-d',
      'createVeth foo 1234 false',
      `addAddress ve-foo ${a.hostAddress}/28 brd ${a.broadcast}`,
      'routeLocalnet ve-foo',
      'setUp ve-foo',
      'configureContainer 1234 up,address,route',
      `addNeighbor ve-foo ${a.containerAddress} ${p.veth!.containerMac}`,
      `startDhcp ${a.hostAddress}`,
      'createVethExtra nt-x',
    ]);
    expect(applied).toMatchObject({ links: ['ve-foo', 'nt-x'], movedIn: ['nt-d'], netnsFd: 99 });
    calls.length = 0;
    expect(await undoNetworkPlan(p, applied, fx)).toEqual([]);
    expect(calls).toEqual(['dhcp.close', 'moveBack 99 nt-d', 'closeNetns 99', 'removeLinks ve-foo,nt-x']);
    expect(applied).toEqual({ links: [], movedIn: [] });
  });

  it('a zone: the address goes on the bridge when made (and when missing); the undo leaves the zone and drops our address', async () => {
    const p = planNetwork({ machine: 'foo', veth: true, zone: 'lab' }, facts());
    const a = p.addressing!;
    const { calls, fx } = recorder();
    const applied = await applyNetworkPlan(p, 7, fx);
    expect(calls.slice(0, 6)).toEqual([
      'openNetns 7',
      'createVeth foo 7 true',
      'joinZone vb-foo lab',
      `addAddress vz-lab ${a.hostAddress}/24 brd ${a.broadcast}`,
      `hasAddress ${a.hostAddress}`,
      'configureContainer 7 up,address,route',
    ]);
    calls.length = 0;
    let asked = false;
    await undoNetworkPlan(p, applied, fx, {
      zoneAddress: async (del) => {
        asked = true;
        await del();
      },
    });
    expect(asked).toBe(true);
    expect(calls).toEqual(['dhcp.close', 'closeNetns 99', 'removeLinks vb-foo', 'leaveZone lab', `delAddress vz-lab ${a.hostAddress}`]);
  });

  it('a failure half-way: APPLIED lists what was made, and the undo removes only that', async () => {
    const p = planNetwork({ machine: 'foo', veth: true, macvlan: ['eth9'] }, facts());
    const { calls, fx } = recorder('createMacvlan');
    const applied = { links: [] as string[], movedIn: [] as string[] };
    await expect(applyNetworkPlan(p, 5, fx, applied)).rejects.toThrow('failed: createMacvlan eth9');
    expect(applied.links).toEqual(['ve-foo']);
    calls.length = 0;
    await undoNetworkPlan(p, applied, fx);
    expect(calls).toEqual(['dhcp.close', 'closeNetns 99', 'removeLinks ve-foo']);
  });

  it('a DHCP server that cannot start is a warning, not a failure', async () => {
    const p = planNetwork({ machine: 'foo', veth: true }, facts());
    const { fx } = recorder('startDhcp');
    const warnings: string[] = [];
    const applied = await applyNetworkPlan(p, 5, fx, undefined, { warn: (l) => warnings.push(l) });
    expect(applied.dhcp).toBeUndefined();
    expect(warnings).toEqual([expect.stringMatching(/^Warning: no DHCP server for the container: failed: startDhcp/)]);
  });
});
