import { describe, expect, it } from 'vitest';
import { type ContainerConfig, type ContainerExtension, handoffBlocker, type Prepared } from '@nspawn/runtime';
import { privateUsersExtension } from './private-users.js';
import { storageExtension } from './storage.js';
import { baseConfig } from './test/fixtures.js';

const prepared = (over: Partial<ContainerConfig> = {}): Prepared => ({
  config: baseConfig(over),
  killSignal: 0,
  quiet: true,
  keepUnit: false,
  notifyReady: false,
});
const proc = {
  execve: (() => {
    throw new Error('not here');
  }) as never,
  planFd: () => 99,
  env: {},
};

describe('handoffBlocker', () => {
  it('hands a plain run over', () => {
    expect(handoffBlocker(prepared(), [privateUsersExtension()], proc)).toBeUndefined();
  });
  it('keeps a booted container: each boot is planned anew', () => {
    expect(handoffBlocker(prepared({ startMode: 'boot' }), [], proc)).toMatch(/boot/);
  });
  it('hands a private-users run over: the helper writes the maps, a holder process keeps the range', () => {
    expect(handoffBlocker(prepared({ userns: { shift: 65536, range: 65536, pick: true } }), [privateUsersExtension()], proc)).toBeUndefined();
  });
  it('keeps a run an extension needs, and one with an extension that does not say', () => {
    const silent: ContainerExtension = { name: 'net', attach() {} };
    expect(handoffBlocker(prepared(), [silent], proc)).toMatch(/net has work/);
    const idle: ContainerExtension = { name: 'idle', needed: () => false, attach() {} };
    expect(handoffBlocker(prepared(), [idle], proc)).toBeUndefined();
  });
  it('hands -x over (the helper removes the overlay, the copy or the snapshot); --template keeps Node', () => {
    const x = prepared({ ephemeral: true, directory: '/var/tmp/ov-nothing' });
    expect(handoffBlocker(x, [storageExtension({ env: {} })], proc)).toBeUndefined();
    expect(handoffBlocker(x, [storageExtension({ env: { NSPAWN_EPHEMERAL: 'overlay' } })], proc)).toBeUndefined();
    expect(handoffBlocker(x, [storageExtension({ env: { NSPAWN_EPHEMERAL: 'copy' } })], proc)).toBeUndefined();
    const tpl = prepared({ directory: '/var/tmp/ov-nothing', template: '/var/tmp/ov-tpl' });
    expect(handoffBlocker(tpl, [storageExtension({ env: {} })], proc)).toMatch(/storage has work/);
  });
  it('keeps a run with overlay work directories to remove', () => {
    const cfg = { customMounts: [{ type: 'overlay' as const, lowers: ['/a'], upper: '', destination: '/x', readOnly: false }] };
    expect(handoffBlocker(prepared(cfg as Partial<ContainerConfig>), [], proc)).toMatch(/overlay/);
  });
  it('is off with $NSPAWN_HANDOFF=0 and without the addon\'s execve() and memfd', () => {
    expect(handoffBlocker(prepared(), [], { ...proc, env: { NSPAWN_HANDOFF: '0' } })).toMatch(/NSPAWN_HANDOFF/);
    expect(handoffBlocker(prepared(), [], { env: {} })).toMatch(/execve\(\) with the plan in a memfd/);
    expect(handoffBlocker(prepared(), [], { ...proc, planFd: undefined })).toMatch(/nspawn-sys.node did not load/);
  });
});
