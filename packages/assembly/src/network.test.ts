import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hostNetworkdRuns, networkExtension } from './network.js';
import { handoffBlocker } from '@nspawn/runtime';
import { baseConfig, basePlan } from './test/fixtures.js';
import type { ContainerConfig } from '@nspawn/runtime';

const run = (network: ContainerConfig['network']) => ({ cfg: baseConfig({ privateNetwork: true, ...(network ? { network } : {}) }), log: () => {} });

describe('networkExtension', () => {
  const x = networkExtension({ dir: '/nonexistent-nt-state' });
  it('is needed after the start only for links or ports (a namespace path is only the plan)', () => {
    expect(x.needed!(baseConfig())).toBe(false);
    expect(x.needed!(baseConfig({ network: { namespacePath: '/run/netns/x' } }))).toBe(false);
    expect(x.needed!(baseConfig({ network: { veth: true } }))).toBe(true);
    expect(x.needed!(baseConfig({ network: { interfaces: ['eth9'] } }))).toBe(true);
    const p = { config: baseConfig({ network: { veth: true } }), killSignal: 0, quiet: true, keepUnit: false, notifyReady: false };
    expect(handoffBlocker(p, [x], { execve: () => undefined as never, env: {} })).toBe('network has work to do after the start');
  });
  it('plans the namespace to join, and a sync point for links', () => {
    const plan = basePlan();
    x.plan!(run({ namespacePath: '/run/netns/x' }), plan);
    expect(plan.net).toEqual({ steps: [], netns: '/run/netns/x' });
    expect(plan.sync).toBe(false);
    const p2 = basePlan();
    x.plan!(run({ macvlan: ['eth9'] }), p2);
    expect(p2.sync).toBe(true);
    expect(p2.net).toBeUndefined(); // no addresses without setup()'s allocation
  });
  it('leaves the host side to a running systemd-networkd, unless told otherwise', async () => {
    expect(hostNetworkdRuns()).toBe(false); // (no networkd on the test hosts)
    const dir = mkdtempSync(join(tmpdir(), 'nt-state-'));
    const hostsPath = join(dir, 'hosts');
    writeFileSync(hostsPath, '127.0.0.1 localhost\n');
    try {
      const plans: Record<string, ReturnType<typeof basePlan>> = {};
      for (const networkd of [true, false]) {
        const y = networkExtension({ dir, hostsPath, nftTable: 'nt_unit', ipForward: false, networkdRuns: () => networkd });
        const r = run({ veth: true });
        await y.setup!(r);
        const plan = basePlan();
        y.plan!(r, plan);
        plans[String(networkd)] = plan;
        await y.teardown!(r);
      }
      expect(plans.true!.net).toBeUndefined(); // links only
      expect(plans.false!.net?.steps.map((s) => s.kind)).toEqual(['up', 'address', 'route']);
      expect(readdirSync(dir).filter((f) => f.endsWith('.json'))).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it('refuses systemd\'s conflicts', async () => {
    await expect(x.setup!(run({ veth: true, bridge: 'br0', zone: 'z' }))).rejects.toThrow('--network-bridge= and --network-zone= may not be combined.');
    await expect(x.setup!(run({ namespacePath: '/run/netns/x', macvlan: ['eth9'] }))).rejects.toThrow('--network-namespace-path= cannot be combined with other network options.');
  });
});
