import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { addonExecve, execveAddonCandidates, handoffBlocker } from './handoff.js';
import type { ContainerExtension } from './extension.js';
import { privateUsersExtension } from './private-users.js';
import { storageExtension } from './storage.js';
import type { Prepared } from './prepare.js';
import { baseConfig } from './test/fixtures.js';
import type { ContainerConfig } from './plan.js';

const prepared = (over: Partial<ContainerConfig> = {}): Prepared => ({
  config: baseConfig(over),
  killSignal: 0,
  quiet: true,
  keepUnit: false,
  notifyReady: false,
});
const proc = { execve: (() => {
  throw new Error('not here');
}) as never, env: {} };

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
  it('is off with $NSPAWN_HANDOFF=0 and without process.execve', () => {
    expect(handoffBlocker(prepared(), [], { ...proc, env: { NSPAWN_HANDOFF: '0' } })).toMatch(/NSPAWN_HANDOFF/);
    expect(handoffBlocker(prepared(), [], { env: {} })).toMatch(/execve/);
  });
});

describe('the execve addon', () => {
  const built = fileURLToPath(new URL('../native/build/nspawn-execve.node', import.meta.url));
  const handoffJs = fileURLToPath(new URL('../dist/handoff.js', import.meta.url));
  /** runs SCRIPT (ESM, with addonExecve imported) in a fresh Node */
  const node = (script: string) =>
    spawnSync(process.execPath, ['--input-type=module', '-e', `import { addonExecve } from ${JSON.stringify(handoffJs)};\n${script}`], { encoding: 'utf8' });

  it('is found beside a bundle first, then in native/build and native/prebuilt', () => {
    expect(execveAddonCandidates('/opt/x/dist')).toEqual([
      `/opt/x/dist/nspawn-execve-linux-${process.arch}.node`,
      '/opt/x/dist/nspawn-execve.node',
      '/opt/x/native/build/nspawn-execve.node',
      `/opt/x/native/prebuilt/nspawn-execve-linux-${process.arch}.node`,
    ]);
  });

  it('skips what is missing or does not load, and is undefined when nothing does', () => {
    const dir = mkdtempSync('/tmp/nspawn-test-addon-');
    try {
      writeFileSync(join(dir, 'bad.node'), 'not an ELF file');
      expect(addonExecve([join(dir, 'missing.node'), join(dir, 'bad.node')])).toBeUndefined();
      expect(typeof addonExecve([join(dir, 'bad.node'), built])).toBe('function');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('replaces the process with the program, the environment and the standard streams passed on', () => {
    const r = node(`addonExecve([${JSON.stringify(built)}])('/bin/sh', ['sh', '-c', 'echo "$X $$"; echo err >&2'], { X: 'from-node', PATH: '/bin' });`);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toMatch(/^from-node \d+$/);
    expect(r.stderr).toBe('err\n');
  });

  it('throws when the exec fails (process.execve() would abort Node), with the errno as its code', () => {
    const r = node(`try { addonExecve([${JSON.stringify(built)}])('/nonexistent/x', ['x'], {}); } catch (e) { console.log(e.code, e.message); }`);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('ENOENT No such file or directory');
  });
});
