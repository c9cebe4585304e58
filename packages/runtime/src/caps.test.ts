import { describe, expect, it } from 'vitest';
import { mergeSettings, parseCommandLine, type Settings } from '@nspawn/settings';
import {
  ALL_CAPABILITIES,
  CAP_NET_ADMIN,
  CAP_NET_BIND_SERVICE,
  CAPABILITIES_NOT_IN_BOUNDING_SET,
  capabilitiesUpTo,
  capabilityMaskOf,
  capabilityNames,
  capabilityQuintet,
  containerCapabilities,
  DEFAULT_RETAINED_CAPABILITIES,
  defaultContainerCapabilities,
  readHostCapabilities,
  verifyAmbientCapabilities,
} from './caps.js';
import type { Tree } from './host.js';
import { planContainer } from './plan.js';
import { encodePlan } from './protocol.js';
import { decoded } from './test/decode.js';
import { type PrepareEnv, prepareContainer } from './prepare.js';
import { ContainerError } from './errors.js';
import { bareHost, baseConfig, emptyTree } from './test/fixtures.js';

const caps = (...names: string[]) => capabilityMaskOf(names);
/** The host bounding set measured on this project's VMs: everything up to 40 but CAP_SYS_RESOURCE. */
const HOST_BOUNDING = 0x1fffeffffffn;
const LAST = 40;

describe('the retained set (arg_caps_retain)', () => {
  it('is systemd-nspawn 252 default: CapBnd 00000000fdecafff before the host bounding set takes SYS_RESOURCE', () => {
    expect(DEFAULT_RETAINED_CAPABILITIES).toBe(0xfdecafffn);
    expect(capabilityNames(DEFAULT_RETAINED_CAPABILITIES)).toEqual([
      'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_SETGID', 'CAP_SETUID',
      'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE', 'CAP_NET_BROADCAST', 'CAP_NET_RAW', 'CAP_IPC_OWNER',
      'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE', 'CAP_SYS_ADMIN', 'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE', 'CAP_SYS_TTY_CONFIG',
      'CAP_MKNOD', 'CAP_LEASE', 'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL', 'CAP_SETFCAP',
    ]);
  });
  it('reads settings lists: names in any case, numbers, CAP_<n>, all', () => {
    expect(caps('CAP_CHOWN', 'cap_kill')).toBe(0b100001n);
    expect(caps('12')).toBe(CAP_NET_ADMIN);
    expect(caps('CAP_12')).toBe(CAP_NET_ADMIN);
    expect(caps('CAP_CHOWN', 'all')).toBe(ALL_CAPABILITIES);
    expect(caps('CAP_NOPE')).toBe(0n);
    expect(capabilityMaskOf(undefined)).toBe(0n);
  });
  it('--capability= adds, --drop-capability= removes, both after the defaults (parse_argv())', () => {
    expect(containerCapabilities({ capability: ['CAP_SYS_TIME'] }).retain).toBe(DEFAULT_RETAINED_CAPABILITIES | caps('CAP_SYS_TIME'));
    expect(containerCapabilities({ dropCapability: ['CAP_CHOWN', 'CAP_KILL'] }).retain).toBe(0xfdecafden);
    expect(containerCapabilities({ capability: ['CAP_SYS_TIME'], dropCapability: ['CAP_SYS_TIME'] }).retain).toBe(DEFAULT_RETAINED_CAPABILITIES);
  });
  it('accepts all on both sides: every bit, or none', () => {
    expect(containerCapabilities({ capability: ['all'] }).retain).toBe(ALL_CAPABILITIES);
    expect(containerCapabilities({ dropCapability: ['all'] }).retain).toBe(0n);
    expect(containerCapabilities({ capability: ['all'], dropCapability: ['CAP_SYS_MODULE'] }).retain).toBe(ALL_CAPABILITIES & ~caps('CAP_SYS_MODULE'));
  });
  it('adds CAP_NET_ADMIN only with a private network, and a drop wins over it', () => {
    expect(containerCapabilities({}).retain & CAP_NET_ADMIN).toBe(0n);
    expect(containerCapabilities({ privateNetwork: true }).retain & CAP_NET_ADMIN).toBe(CAP_NET_ADMIN);
    expect(containerCapabilities({ privateNetwork: true, dropCapability: ['CAP_NET_ADMIN'] }).retain & CAP_NET_ADMIN).toBe(0n);
  });
  it('drops CAP_NET_BIND_SERVICE in a user namespace with a shift but no private network, even when asked for', () => {
    const userns = (shift: number | undefined, extra: Settings = {}) =>
      containerCapabilities({ privateUsers: shift === undefined ? { mode: 'pick' } : { mode: 'fixed', shift }, ...extra }).retain;
    expect(userns(0x70000000) & CAP_NET_BIND_SERVICE).toBe(0n);
    expect(userns(undefined) & CAP_NET_BIND_SERVICE).toBe(0n); // -U: the shift is still to be picked
    expect(userns(0x70000000, { capability: ['CAP_NET_BIND_SERVICE'] }) & CAP_NET_BIND_SERVICE).toBe(0n);
    expect(userns(0) & CAP_NET_BIND_SERVICE).toBe(CAP_NET_BIND_SERVICE); // identity-like shift 0 keeps it
    expect(userns(0x70000000, { privateNetwork: true }) & CAP_NET_BIND_SERVICE).toBe(CAP_NET_BIND_SERVICE);
    expect(containerCapabilities({ privateUsers: { mode: 'no' } }).retain & CAP_NET_BIND_SERVICE).toBe(CAP_NET_BIND_SERVICE);
  });
  it('takes the network and user namespace rules from the command line, and a .nspawn file adds after them', () => {
    // the file's Capability= comes after the CAP_NET_BIND_SERVICE rule (merge_settings() runs after parse_argv())
    const cl = parseCommandLine(['--private-users=1879048192:65536', '-D', '/m/box']);
    const merged = mergeSettings(cl, { settings: { capability: ['CAP_NET_BIND_SERVICE'] }, trusted: true, mode: 'yes', path: '/m/box.nspawn' }).settings;
    expect(containerCapabilities(merged, cl.settings).retain & CAP_NET_BIND_SERVICE).toBe(CAP_NET_BIND_SERVICE);
    // a file's private network brings CAP_NET_ADMIN through the merged capability list
    const plain = parseCommandLine(['-D', '/m/box']);
    const net = mergeSettings(plain, { settings: { privateNetwork: true }, trusted: true, mode: 'yes', path: '/m/box.nspawn' }).settings;
    expect(containerCapabilities(net, plain.settings).retain & CAP_NET_ADMIN).toBe(CAP_NET_ADMIN);
    // ... but not when the command line set the capabilities: the file's capability group is then ignored
    const withCap = parseCommandLine(['--capability=CAP_SYS_TIME', '-D', '/m/box']);
    const net2 = mergeSettings(withCap, { settings: { privateNetwork: true }, trusted: true, mode: 'yes', path: '/m/box.nspawn' }).settings;
    expect(net2.privateNetwork).toBe(true);
    expect(containerCapabilities(net2, withCap.settings).retain & CAP_NET_ADMIN).toBe(0n);
    // an untrusted file's Capability= is ignored (by the merge), its DropCapability= applies
    const untrusted = mergeSettings(plain, {
      settings: { capability: ['CAP_SYS_TIME'], dropCapability: ['CAP_KILL'] },
      trusted: false,
      mode: 'yes',
      path: '/m/box.nspawn',
    }).settings;
    expect(containerCapabilities(untrusted, plain.settings).retain).toBe(DEFAULT_RETAINED_CAPABILITIES & ~caps('CAP_KILL'));
  });
  it('--settings=override: a file without a private network takes the command line CAP_NET_ADMIN away', () => {
    const cl = parseCommandLine(['--private-network', '-D', '/m/box']);
    const merged = mergeSettings(cl, { settings: { privateNetwork: false }, trusted: true, mode: 'override', path: '/m/box.nspawn' }).settings;
    expect(containerCapabilities(merged, cl.settings).retain & CAP_NET_ADMIN).toBe(0n);
  });
  it('defaults for a configuration without capability settings', () => {
    expect(defaultContainerCapabilities({ privateNetwork: false })).toEqual({ retain: DEFAULT_RETAINED_CAPABILITIES, ambient: 0n });
    expect(defaultContainerCapabilities({ privateNetwork: true }).retain).toBe(DEFAULT_RETAINED_CAPABILITIES | CAP_NET_ADMIN);
    expect(defaultContainerCapabilities({ privateNetwork: false, usernsShift: 65536 }).retain).toBe(DEFAULT_RETAINED_CAPABILITIES & ~CAP_NET_BIND_SERVICE);
  });
});

describe('AmbientCapability= (verify_arguments())', () => {
  it('is ORed in and must be covered by the retained set', () => {
    const c = containerCapabilities({ ambientCapability: ['CAP_NET_RAW', 'CAP_CHOWN'] });
    expect(c.ambient).toBe(caps('CAP_NET_RAW', 'CAP_CHOWN'));
    expect(verifyAmbientCapabilities(c, 'pid1')).toBeUndefined();
    expect(verifyAmbientCapabilities(containerCapabilities({ ambientCapability: ['CAP_SYS_TIME'] }), 'pid1')).toBe(
      'AmbientCapability= setting is not fully covered by Capability= setting.',
    );
    expect(verifyAmbientCapabilities(containerCapabilities({ ambientCapability: ['CAP_SYS_TIME'], capability: ['CAP_SYS_TIME'] }), 'pid2')).toBeUndefined();
    expect(verifyAmbientCapabilities(containerCapabilities({ ambientCapability: ['CAP_NET_RAW'], dropCapability: ['CAP_NET_RAW'] }), 'pid1')).toMatch(/not fully covered/);
  });
  it('refuses all, and boot mode', () => {
    expect(verifyAmbientCapabilities(containerCapabilities({ ambientCapability: ['all'], capability: ['all'] }), 'pid1')).toBe(
      'AmbientCapability= does not support the value all.',
    );
    expect(verifyAmbientCapabilities(containerCapabilities({ ambientCapability: ['CAP_NET_RAW'] }), 'boot')).toBe(
      'AmbientCapability= setting is not useful for boot mode.',
    );
    expect(verifyAmbientCapabilities(containerCapabilities({}), 'boot')).toBeUndefined();
  });
});

describe('the five sets (drop_capabilities(), capability_quintet_mangle())', () => {
  const full = capabilitiesUpTo(LAST);
  it('root keeps the retained set everywhere, ambient as asked', () => {
    const c = containerCapabilities({ ambientCapability: ['CAP_NET_RAW'] });
    const { quintet, dropped } = capabilityQuintet(c, 0, full, LAST);
    expect(dropped).toBe(0n);
    expect(quintet).toEqual({ bounding: c.retain, effective: c.retain, permitted: c.retain, inheritable: c.retain, ambient: caps('CAP_NET_RAW') });
  });
  it('another UID keeps the bounding set, and only the ambient capabilities in inheritable and permitted', () => {
    const c = containerCapabilities({ ambientCapability: ['CAP_NET_RAW'] });
    const { quintet } = capabilityQuintet(c, 1000, full, LAST);
    const raw = caps('CAP_NET_RAW');
    expect(quintet).toEqual({ bounding: c.retain, effective: 0n, permitted: raw, inheritable: raw, ambient: raw });
    expect(capabilityQuintet(containerCapabilities({}), 1000, full, LAST).quintet).toEqual({
      bounding: DEFAULT_RETAINED_CAPABILITIES,
      effective: 0n,
      permitted: 0n,
      inheritable: 0n,
      ambient: 0n,
    });
  });
  it('takes out what the bounding set lacks, from every set, and says so (this host: no CAP_SYS_RESOURCE)', () => {
    const c = containerCapabilities({});
    const { quintet, dropped } = capabilityQuintet(c, 0, HOST_BOUNDING, LAST);
    expect(dropped).toBe(caps('CAP_SYS_RESOURCE'));
    expect(quintet.bounding).toBe(0xfcecafffn); // what systemd-nspawn shows here
    expect(quintet.effective).toBe(0xfcecafffn);
    // a non-root payload is warned about too: the bounding set still has it
    expect(capabilityQuintet(c, 1000, HOST_BOUNDING, LAST).dropped).toBe(caps('CAP_SYS_RESOURCE'));
    // nothing to warn about when nothing asked for is missing
    expect(capabilityQuintet(containerCapabilities({ dropCapability: ['CAP_SYS_RESOURCE'] }), 0, HOST_BOUNDING, LAST).dropped).toBe(0n);
    // ambient capabilities that the bounding set lacks are suppressed the same way
    const amb = containerCapabilities({ ambientCapability: ['CAP_NET_RAW', 'CAP_SYS_RESOURCE'] });
    expect(capabilityQuintet(amb, 1000, HOST_BOUNDING, LAST).quintet.ambient).toBe(caps('CAP_NET_RAW'));
  });
  it('all means every capability this kernel has, and bits above cap_last_cap are never reported', () => {
    const { quintet, dropped } = capabilityQuintet(containerCapabilities({ capability: ['all'] }), 0, HOST_BOUNDING, LAST);
    expect(quintet.bounding).toBe(0x1fffeffffffn);
    expect(dropped).toBe(caps('CAP_SYS_RESOURCE'));
    expect(capabilityQuintet(containerCapabilities({ dropCapability: ['all'] }), 0, HOST_BOUNDING, LAST)).toEqual({
      quintet: { bounding: 0n, effective: 0n, permitted: 0n, inheritable: 0n, ambient: 0n },
      dropped: 0n,
    });
  });
  it('the warning is systemd-nspawn text', () => {
    expect(CAPABILITIES_NOT_IN_BOUNDING_SET).toBe('Some capabilities will not be set because they are not in the current bounding set.');
  });
});

describe('readHostCapabilities', () => {
  it('reads CapBnd and cap_last_cap', () => {
    expect(readHostCapabilities('Name:\tx\nCapBnd:\t000001fffeffffff\nCapAmb:\t0\n', '40\n')).toEqual({ bounding: HOST_BOUNDING, lastCap: 40 });
    expect(readHostCapabilities('CapBnd:\t000001ffffffffff\n', 'garbage')).toEqual({ bounding: 0x1ffffffffffn, lastCap: 40 });
    expect(readHostCapabilities('no caps here', '40')).toBeUndefined();
  });
  it('works on this machine', () => {
    const h = readHostCapabilities();
    expect(h?.lastCap).toBeGreaterThanOrEqual(36);
  });
});

// ---- how the rules reach the helper plan

const fakeTree = () => emptyTree();
const host = bareHost({ capabilities: { bounding: HOST_BOUNDING, lastCap: LAST } });
const cfg = baseConfig;
const rnd = { hex128: () => '0123456789abcdef0123456789abcdef' };

describe('planContainer: capabilities and keyring', () => {
  it('plans the masked quintet for root, with the warning, and a session keyring', () => {
    const p = planContainer(cfg(), host, fakeTree(), rnd);
    expect(p.capabilities).toEqual({ bounding: 0xfcecafffn, effective: 0xfcecafffn, permitted: 0xfcecafffn, inheritable: 0xfcecafffn, ambient: 0n });
    expect(p.capabilityWarning).toBe(CAPABILITIES_NOT_IN_BOUNDING_SET);
    expect(p.sessionKeyring).toBe(true);
  });
  it('no warning when quiet', () => {
    expect(planContainer(cfg({ quiet: true }), host, fakeTree(), rnd).capabilityWarning).toBeUndefined();
  });
  it('uses the --user UID', () => {
    const p = planContainer(
      cfg({ user: { name: 'u', uid: 1000, gid: 1000, groups: [], home: '/home/u', shell: '/bin/sh' }, userName: 'u', capabilities: containerCapabilities({ ambientCapability: ['CAP_NET_RAW'] }) }),
      host,
      fakeTree(),
      rnd,
    );
    expect(p.uid).toBe(1000);
    expect(p.capabilities).toEqual({ bounding: 0xfcecafffn, effective: 0n, permitted: 0x2000n, inheritable: 0x2000n, ambient: 0x2000n });
  });
  it('a user namespace starts with a full bounding set: nothing to mask, no warning; CAP_NET_BIND_SERVICE goes', () => {
    const p = planContainer(cfg({ userns: { shift: 0x70000000, range: 65536 } }), host, fakeTree(), rnd);
    expect(p.capabilities?.bounding).toBe(0xfdecabffn); // what systemd-nspawn shows with --private-users=1879048192:65536
    expect(p.capabilityWarning).toBeUndefined();
  });
  it('private network: CAP_NET_ADMIN', () => {
    expect(planContainer(cfg({ privateNetwork: true }), host, fakeTree(), rnd).capabilities?.bounding).toBe(0xfcecbfffn);
  });
  it('reaches the helper as the five masks, the warning and the keyring flag', () => {
    expect(decoded(encodePlan(planContainer(cfg(), host, fakeTree(), rnd)))).toMatchObject({
      capabilities: { bounding: String(0xfcecafff), effective: String(0xfcecafff), permitted: String(0xfcecafff), inheritable: String(0xfcecafff), ambient: '0' },
      capabilityWarning: CAPABILITIES_NOT_IN_BOUNDING_SET,
      sessionKeyring: true,
    });
  });
});

describe('prepareContainer: capability settings', () => {
  const t: Tree = { ...fakeTree(), root: '/m/box' };
  const env: PrepareEnv = {
    stdinIsTTY: false,
    stdoutIsTTY: false,
    tree: () => t,
    exists: (p) => p === '/m/box',
    environ: {},
    hostname: () => 'host',
  };
  it('are applied, not refused as unsupported', () => {
    const p = prepareContainer({ directory: '/m/box', capability: ['CAP_SYS_TIME'], dropCapability: ['CAP_KILL'], ambientCapability: ['CAP_CHOWN'] }, env);
    expect(p.config.capabilities).toEqual({
      retain: (DEFAULT_RETAINED_CAPABILITIES | caps('CAP_SYS_TIME')) & ~caps('CAP_KILL'),
      ambient: caps('CAP_CHOWN'),
    });
  });
  it('refuse a bad ambient set with systemd text', () => {
    expect(() => prepareContainer({ directory: '/m/box', ambientCapability: ['CAP_SYS_TIME'] }, env)).toThrow(
      new ContainerError('AmbientCapability= setting is not fully covered by Capability= setting.'),
    );
    expect(() => prepareContainer({ directory: '/m/box', ambientCapability: ['all'], capability: ['all'] }, env)).toThrow(
      new ContainerError('AmbientCapability= does not support the value all.'),
    );
  });
  it('take the user namespace rule from the command line settings', () => {
    const s: Settings = { directory: '/m/box', privateUsers: { mode: 'fixed', shift: 0x70000000, range: 65536 } };
    expect(prepareContainer(s, env).config.capabilities!.retain & CAP_NET_BIND_SERVICE).toBe(0n);
    expect(prepareContainer(s, env, [], { directory: '/m/box' }).config.capabilities!.retain & CAP_NET_BIND_SERVICE).toBe(CAP_NET_BIND_SERVICE);
  });
  it('quiet (or a pipe console) silences the bounding set warning', () => {
    expect(prepareContainer({ directory: '/m/box', consoleMode: 'pipe' }, env).config.quiet).toBe(true);
    expect(prepareContainer({ directory: '/m/box' }, env).config.quiet).toBeUndefined();
  });
});
