import { describe, expect, it } from 'vitest';
import { parseOciBundle } from '@nspawn/settings';
import type { HostFacts, Tree } from './host.js';
import { type ContainerConfig, planContainer } from './plan.js';
import { applyOciSeccomp, ociCapabilityQuintet, ociDeviceOps, ociDeviceRules, ociRunOf, ociSharedNamespaces } from './oci-bundle.js';
import { type PrepareEnv, prepareContainer } from './prepare.js';
import { CLONE } from './protocol.js';
import type { HelperPlan } from './protocol.js';
import { AUDIT_ARCH, decodeFilter, runFilter, SECCOMP_RET } from './seccomp/bpf.js';
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

  it('takes linux.seccomp: 252\'s filter in place of nspawn\'s, with no_new_privs; libseccomp\'s refusals fail the start', () => {
    const sc = { defaultAction: 'SCMP_ACT_ALLOW', architectures: [], syscalls: [{ names: ['getppid', 'no_such'], action: 'SCMP_ACT_ERRNO', args: [] }] };
    const run = ociRunOf(oci({ linux: { seccomp: sc } }), 'pipe');
    expect(run?.seccomp).toEqual(sc);
    const plan = { noNewPrivileges: false } as HelperPlan;
    applyOciSeccomp(plan, run!.seccomp!, false);
    expect(plan.noNewPrivileges).toBe(true);
    const prog = decodeFilter(plan.seccomp!);
    expect(runFilter(prog, { nr: 110, arch: AUDIT_ARCH.X86_64 })).toBe((SECCOMP_RET.ERRNO | 1) >>> 0);
    expect(runFilter(prog, { nr: 39, arch: AUDIT_ARCH.X86_64 })).toBe(SECCOMP_RET.ALLOW);
    expect(runFilter(prog, { nr: 20, arch: AUDIT_ARCH.I386 })).toBe(SECCOMP_RET.KILL_THREAD);
    expect(() => applyOciSeccomp(plan, sc, true)).toThrow('--suppress-sync= with an OCI bundle');
    expect(() => applyOciSeccomp(plan, { ...sc, syscalls: [{ names: ['getppid'], action: 'SCMP_ACT_ALLOW', args: [] }] }, false)).toThrow(/default action SCMP_ACT_ALLOW, which libseccomp refuses/);
    const twice = [{ index: 0, value: 1n, valueTwo: 0n, op: 'SCMP_CMP_EQ' }, { index: 0, value: 2n, valueTwo: 0n, op: 'SCMP_CMP_EQ' }];
    expect(() => applyOciSeccomp(plan, { ...sc, syscalls: [{ names: ['getppid'], action: 'SCMP_ACT_ERRNO', args: twice }] }, false)).toThrow(/argument 0 twice/);
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

describe('a bundle without its own PID, IPC or UTS namespace (oci_namespaces(), arg_clone_ns_flags)', () => {
  const ns = (...types: string[]) => ({ linux: { namespaces: ['mount', ...types].map((type) => ({ type })) } });
  const env: PrepareEnv = {
    stdinIsTTY: false,
    stdoutIsTTY: false,
    tree: () => ({ ...tree, root: '/m/box' }),
    exists: (p) => p === '/m/box',
    environ: {},
    hostname: () => 'host',
  };
  const prep = (o: Record<string, unknown>, startMode?: 'pid1' | 'pid2' | 'boot') =>
    prepareContainer({ directory: '/m/box', oci: oci(o), ...(startMode ? { startMode } : {}) }, env);

  it('shares the namespaces the bundle lacks, and only those', () => {
    expect(ociSharedNamespaces(oci(ns('pid', 'ipc', 'uts')))).toBeUndefined();
    expect(ociSharedNamespaces(oci({}))).toBeUndefined();
    expect(ociSharedNamespaces(undefined)).toBeUndefined();
    expect(ociSharedNamespaces(oci(ns('pid', 'uts')))).toEqual(['ipc']);
    expect(ociSharedNamespaces(oci(ns('network', 'cgroup')))).toEqual(['ipc', 'pid', 'uts']);
  });

  it('clones only the namespaces the bundle has; no hostname without a UTS namespace, no loginuid reset without a PID one', () => {
    const flags = (shared?: ('ipc' | 'pid' | 'uts')[]) => plan(shared ? { sharedNamespaces: shared } : {});
    const all = flags();
    expect(all.cloneFlags & (CLONE.NEWPID | CLONE.NEWUTS | CLONE.NEWIPC | CLONE.NEWNS)).toBe(CLONE.NEWPID | CLONE.NEWUTS | CLONE.NEWIPC | CLONE.NEWNS);
    expect(all.hostname).toBeDefined();
    expect(all.resetLoginuid).toBe(true);
    const noPid = flags(['pid']);
    expect(noPid.cloneFlags).toBe(all.cloneFlags & ~CLONE.NEWPID);
    expect(noPid.hostname).toBe(all.hostname);
    // reset_audit_loginuid(): only with a PID namespace of its own
    expect(noPid.resetLoginuid).toBeUndefined();
    const noUts = flags(['uts']);
    expect(noUts.cloneFlags).toBe(all.cloneFlags & ~CLONE.NEWUTS);
    expect(noUts.hostname).toBeUndefined();
    expect(flags(['ipc', 'pid', 'uts']).cloneFlags).toBe(CLONE.NEWNS | (all.cloneFlags & ~(CLONE.NEWPID | CLONE.NEWUTS | CLONE.NEWIPC)));
  });

  it('without a PID or UTS namespace: not registered, and -b/-a refused as 252 refuses them', () => {
    const seen = (o: Record<string, unknown>) => {
      const c = prep(o).config;
      return { register: c.register, sharedNamespaces: c.sharedNamespaces };
    };
    expect(seen(ns('pid', 'ipc', 'uts'))).toEqual({ register: undefined, sharedNamespaces: undefined });
    expect(seen(ns('pid', 'uts'))).toEqual({ register: undefined, sharedNamespaces: ['ipc'] });
    expect(seen(ns('ipc', 'uts'))).toEqual({ register: false, sharedNamespaces: ['pid'] });
    expect(seen(ns('ipc', 'pid'))).toEqual({ register: false, sharedNamespaces: ['uts'] });
    for (const mode of ['boot', 'pid2'] as const) {
      expect(() => prep(ns('ipc', 'uts'), mode)).toThrow('--boot cannot be used without namespacing.');
      expect(() => prep(ns('ipc', 'pid'), mode)).toThrow('--boot cannot be used without namespacing.');
      expect(() => prep(ns('pid', 'uts'), mode)).not.toThrow('namespacing');
    }
  });
});
