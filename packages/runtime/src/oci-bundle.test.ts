import { describe, expect, it } from 'vitest';
import { parseOciBundle } from '@nspawn/settings';
import type { HostFacts, Tree } from './host.js';
import { type ContainerConfig, planContainer } from './plan.js';
import { ociCapabilityQuintet, ociDeviceOps, ociDeviceRules, ociRunOf } from './oci-bundle.js';
import { baseConfig } from './test/fixtures.js';

const B = '/srv/b';
const oci = (o: Record<string, unknown>) => parseOciBundle(JSON.stringify({ ociVersion: '1.0.0', ...o }), B).settings.oci;
const bit = (n: number) => 1n << BigInt(n);
const KILL = bit(5);
const CHOWN = bit(0);
const ALL = (1n << 41n) - 1n;

const tree: Tree = {
  root: '/srv/tree',
  resolve: (p) => (['/usr', '/etc/shadow'].includes(p) ? `/srv/tree${p}` : undefined),
  readFile: () => undefined,
  isDirectory: (p) => p === '/usr',
  readdir: () => [],
  lexists: (p) => ['/usr', '/etc/shadow'].includes(p),
  readlink: () => undefined,
};
const host: HostFacts = {
  osRelease: { path: '/etc/os-release', pairs: { ID: 'debian' } },
  devNodes: {},
  hasResolvConf: false,
  cgroups: { kind: 'unified', hierarchies: [] },
  nrOpen: 1048576,
  pid1Limits: {},
  inaccessibleFile: '/run/nspawn/inaccessible/reg',
  capabilities: { bounding: ALL, lastCap: 40 },
} as HostFacts;
const plan = (c: Partial<ContainerConfig>) => planContainer(baseConfig(c), host, tree, { hex128: () => 'ab'.repeat(16) });

describe('ociRunOf()', () => {
  it('takes the user, the capability sets as masks and the devices', () => {
    const run = ociRunOf(oci({ process: { user: { uid: 7, gid: 8, additionalGids: [9] }, capabilities: { bounding: ['CAP_KILL'], ambient: [] } }, linux: { devices: [{ type: 'p', path: '/dev/p' }] } }), 'pipe');
    expect(run).toEqual({ uid: 7, gid: 8, groups: [9], capabilities: { bounding: KILL, ambient: 0n }, devices: [{ path: '/dev/p', mode: 0o010644 }] });
    expect(ociRunOf(undefined, 'pipe')).toBeUndefined();
  });

  it('refuses what the engine cannot do yet, naming it', () => {
    expect(() => ociRunOf(oci({ linux: { seccomp: { defaultAction: 'SCMP_ACT_ALLOW' } } }), 'pipe')).toThrow("An OCI bundle's seccomp filter (linux.seccomp) is not supported yet by this nspawn build.");
    expect(() => ociRunOf(oci({ linux: { namespaces: [{ type: 'mount' }, { type: 'uts' }] } }), 'pipe')).toThrow(
      'An OCI bundle without the ipc, pid namespaces (linux.namespaces) is not supported yet by this nspawn build.',
    );
  });

  it('takes the console size where nspawn forwards a pty', () => {
    const size = oci({ process: { consoleSize: { width: 80, height: 24 } } });
    expect(ociRunOf(size, 'interactive')).toEqual({ consoleSize: { width: 80, height: 24 } });
    expect(ociRunOf(size, 'read-only')).toEqual({ consoleSize: { width: 80, height: 24 } });
    expect(ociRunOf(size, 'pipe')).toEqual({});
    expect(ociRunOf(size, 'passive')).toEqual({});
    expect(planContainer(baseConfig({ console: 'read-only', oci: { consoleSize: { width: 80, height: 24 } } }), host, tree, { hex128: () => 'ab'.repeat(16) }).consoleSize).toEqual({ width: 80, height: 24 });
  });
});

describe('ociCapabilityQuintet() (drop_capabilities() with a quintet)', () => {
  const retain = { retain: KILL | CHOWN, ambient: 0n };
  it('fills in the sets not given, from the retained ones for root, empty for others', () => {
    expect(ociCapabilityQuintet({ effective: KILL }, retain, 0, ALL, 40)).toEqual({ bounding: KILL | CHOWN, effective: KILL, inheritable: KILL | CHOWN, permitted: KILL | CHOWN, ambient: 0n });
    expect(ociCapabilityQuintet({ bounding: KILL }, retain, 1000, ALL, 40)).toEqual({ bounding: KILL, effective: 0n, inheritable: 0n, permitted: 0n, ambient: 0n });
  });
  it('refuses a set beyond the bounding set it starts with, and what capset() refuses', () => {
    expect(() => ociCapabilityQuintet({ bounding: bit(21) }, retain, 0, KILL | CHOWN, 40)).toThrow('Cannot set capabilities that are not in the current bounding set.');
    expect(() => ociCapabilityQuintet({ effective: KILL }, retain, 1000, ALL, 40)).toThrow('Dropping capabilities failed: Operation not permitted');
    expect(() => ociCapabilityQuintet({ ambient: KILL, permitted: KILL }, retain, 1000, ALL, 40)).toThrow('Dropping capabilities failed: Operation not permitted');
  });
});

describe('device nodes', () => {
  const devices = oci({ linux: { devices: [{ type: 'c', path: '/dev/a', major: 1, minor: 11, uid: 5 }, { type: 'b', path: '/dev/b', major: 259, minor: 300 }, { type: 'p', path: '/dev/p' }] } }).devices!;
  it('mknod with the mode as given, chown when an ID is given', () => {
    expect(ociDeviceOps(devices)).toEqual([
      { kind: 'mknod', target: '/dev/a', mode: 0o020644, dev: 0x10b },
      { kind: 'chown', target: '/dev/a', mode: 5, dev: 0xffffffff },
      { kind: 'mknod', target: '/dev/b', mode: 0o060644, dev: (300 & 0xff) | (259 << 8) | ((300 & ~0xff) << 12) },
      { kind: 'mknod', target: '/dev/p', mode: 0o010644, dev: 0 },
    ]);
  });
  it('get mknod (only) in the device policy', () => {
    expect(ociDeviceRules({ devices })).toEqual([
      { type: 'c', major: 1, minor: 11, access: 'm' },
      { type: 'b', major: 259, minor: 300, access: 'm' },
    ]);
  });
});

describe('the plan of a bundle', () => {
  it('the numeric user without HOME or USER; root keeps them', () => {
    const p = plan({ oci: { uid: 1000, gid: 100, groups: [5] }, console: 'pipe' });
    expect([p.uid, p.gid, p.groups]).toEqual([1000, 100, [5]]);
    expect(p.env.some((e) => e.startsWith('HOME=') || e.startsWith('USER='))).toBe(false);
    expect(plan({ oci: { uid: 0 } }).env).toEqual(expect.arrayContaining(['HOME=/root', 'USER=root']));
  });
  it('the quintet from the bundle', () => {
    expect(plan({ oci: { uid: 1000, capabilities: { bounding: KILL } } }).capabilities).toEqual({ bounding: KILL, effective: 0n, inheritable: 0n, permitted: 0n, ambient: 0n });
  });
  it('arbitrary mounts with their options as data; masked paths that are missing are skipped, the others optional', () => {
    const p = plan({
      customMounts: [
        { type: 'arbitrary', source: 'tmpfs', destination: '/m', fstype: 'tmpfs', options: 'size=1m' },
        { type: 'arbitrary', destination: '/n', fstype: 'tmpfs' },
        { type: 'inaccessible', destination: '/etc/shadow', graceful: true },
        { type: 'inaccessible', destination: '/nonexistent', graceful: true },
      ],
    });
    expect(p.ops.filter((o) => ['/m', '/n'].includes(o.target))).toEqual([
      { kind: 'mount', source: 'tmpfs', target: '/m', fstype: 'tmpfs', mountFlags: 0, data: 'size=1m', flags: 1 },
      { kind: 'mount', source: 'none', target: '/n', fstype: 'tmpfs', mountFlags: 0, flags: 1 },
    ]);
    expect(p.ops.filter((o) => o.target === '/etc/shadow').map((o) => [o.kind, o.flags])).toEqual([['mount', 8], ['remount', 8]]);
    expect(p.ops.some((o) => o.target === '/nonexistent')).toBe(false);
  });
});
