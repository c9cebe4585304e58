/** The seccomp filter from the settings to the helper plan: prepareContainer() and planContainer(). */
import type { Settings } from '@nspawn/settings';
import { describe, expect, it } from 'vitest';
import { DEFAULT_RETAINED_CAPABILITIES } from '../caps.js';
import { type ContainerConfig, planContainer } from '../plan.js';
import { type PrepareEnv, prepareContainer } from '../prepare.js';
import { AUDIT_ARCH, decodeFilter, runFilter, SECCOMP_RET } from './bpf.js';
import { nspawnSeccompFilter } from './filter.js';
import { syscallNumber } from './policy.js';
import { bareHost, baseConfig, emptyTree } from '../test/fixtures.js';

const tree = emptyTree();
const host = bareHost();
const cfg = (over: Partial<ContainerConfig> = {}): ContainerConfig => baseConfig({ resolvConf: 'off', timezone: 'off', ...over });
const plan = (over: Partial<ContainerConfig> = {}) => planContainer(cfg(over), host, tree, { hex128: () => 'ab'.repeat(16) });
const x86_64 = (bytes: Uint8Array | undefined, name: string) => {
  const ret = runFilter(decodeFilter(bytes!), { nr: syscallNumber('x86_64', name)!, arch: AUDIT_ARCH.X86_64 });
  return ret === SECCOMP_RET.ALLOW ? 'allow' : `errno ${ret & 0xffff}`;
};

describe('planContainer()', () => {
  it('plans systemd-nspawn\'s default filter', () => {
    const p = plan();
    expect(p.seccomp).toEqual(nspawnSeccompFilter({ retainedCapabilities: DEFAULT_RETAINED_CAPABILITIES }).bytes);
    expect(p.seccompWarnings).toBeUndefined();
  });

  it('gates groups with the capabilities the container keeps', () => {
    expect(x86_64(plan().seccomp, 'clock_settime')).toBe('errno 1');
    const p = plan({ capabilities: { retain: DEFAULT_RETAINED_CAPABILITIES | (1n << 25n) /* CAP_SYS_TIME */, ambient: 0n } });
    expect(x86_64(p.seccomp, 'clock_settime')).toBe('allow');
  });

  it('passes the filter options on, with the warnings', () => {
    const p = plan({ systemCallFilter: { allow: ['kexec_load', '@bogus'], deny: ['getpid'] }, suppressSync: true });
    expect(x86_64(p.seccomp, 'kexec_load')).toBe('allow');
    expect(x86_64(p.seccomp, 'getpid')).toBe('errno 1');
    expect(x86_64(p.seccomp, 'sync')).toBe('errno 0');
    expect(p.seccompWarnings).toHaveLength(3);
  });

  it('plans none when seccomp is off', () => {
    expect(plan({ seccomp: false }).seccomp).toBeUndefined();
  });
});

describe('prepareContainer()', () => {
  const env = (environ: NodeJS.ProcessEnv = {}): PrepareEnv => ({
    stdinIsTTY: false,
    stdoutIsTTY: false,
    tree: () => tree,
    exists: (p) => p === '/m/box',
    environ,
    hostname: () => 'host',
  });
  const prep = (s: Settings, environ?: NodeJS.ProcessEnv) => prepareContainer({ directory: '/m/box', ...s }, env(environ)).config;

  it('takes --system-call-filter= and --suppress-sync= (no longer refused)', () => {
    const c = prep({ systemCallFilter: { allow: ['@clock'], deny: ['@sync'] }, suppressSync: true });
    expect(c.systemCallFilter).toEqual({ allow: ['@clock'], deny: ['@sync'] });
    expect(c.suppressSync).toBe(true);
    expect(prep({}).systemCallFilter).toBeUndefined();
    expect(prep({ suppressSync: false }).suppressSync).toBeUndefined();
  });

  it('$SYSTEMD_SECCOMP=0 turns the filter off; anything but a false boolean leaves it on', () => {
    expect(prep({}, { SYSTEMD_SECCOMP: '0' }).seccomp).toBe(false);
    expect(prep({}, { SYSTEMD_SECCOMP: 'off' }).seccomp).toBe(false);
    expect(prep({}, { SYSTEMD_SECCOMP: 'yes' }).seccomp).toBeUndefined();
    expect(prep({}, { SYSTEMD_SECCOMP: 'bogus' }).seccomp).toBeUndefined();
    expect(prep({}).seccomp).toBeUndefined();
  });
});
