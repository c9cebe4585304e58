/**
 * Root integration tests of the confinement the helper applies: the five capability sets for root and for a
 * --user, ambient capabilities, the bounding-set warning, and the container's own session keyring.
 */
import { execa } from 'execa';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Settings } from '@nspawn/settings';
import {
  CAPABILITIES_NOT_IN_BOUNDING_SET,
  capabilitiesUpTo,
  capabilityQuintet,
  containerCapabilities,
  nodePrepareEnv,
  nodeTree,
  prepareContainer,
  readHostCapabilities,
  runContainer,
} from '../src/index.js';
import { captureFiles, makeTree, requireRoot } from './helpers.js';

beforeAll(requireRoot);

const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

function tree() {
  const t = makeTree('nspawn-caps-');
  cleanups.push(t.cleanup);
  writeFileSync(`${t.root}/etc/passwd`, 'root:x:0:0:root:/root:/bin/sh\nal:x:1000:100:Al:/home/al:/bin/sh\n');
  writeFileSync(`${t.root}/etc/group`, 'root:x:0:\nusers:x:100:\n');
  return t;
}

async function run(t: ReturnType<typeof tree>, settings: Settings, environ: NodeJS.ProcessEnv = process.env) {
  const cap = captureFiles(t.dir);
  cleanups.push(cap.close);
  const log: string[] = [];
  const prepared = prepareContainer({ consoleMode: 'pipe', ...settings, directory: t.root }, { ...nodePrepareEnv(nodeTree), environ });
  const code = await runContainer(prepared, { log: (l) => log.push(l) }, undefined, cap.stdio);
  return { code, ...cap.read(), log };
}

const STATUS = ['/bin/sh', '-c', "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb):' /proc/self/status"];
const hex = (m: bigint) => m.toString(16).padStart(16, '0');
const host = readHostCapabilities()!;

/** What the kernel should show after exec for a quintet, as /proc/self/status lines. */
function expected(settings: Settings, uid: number): string[] {
  const { quintet: q } = capabilityQuintet(containerCapabilities(settings), uid, settings.privateUsers ? capabilitiesUpTo(host.lastCap) : host.bounding, host.lastCap);
  // exec: root gets its bounding set in permitted and effective; anyone else its ambient set
  const prm = uid === 0 ? q.bounding : q.ambient;
  return [`CapInh:\t${hex(q.inheritable)}`, `CapPrm:\t${hex(prm)}`, `CapEff:\t${hex(prm)}`, `CapBnd:\t${hex(q.bounding)}`, `CapAmb:\t${hex(q.ambient)}`];
}

describe('capabilities', () => {
  for (const [name, s] of [
    ['default', {}],
    ['--capability=CAP_SYS_TIME', { capability: ['CAP_SYS_TIME'] }],
    ['--drop-capability=CAP_CHOWN,CAP_KILL', { dropCapability: ['CAP_CHOWN', 'CAP_KILL'] }],
    ['--drop-capability=all', { dropCapability: ['all'] }],
    ['--capability=all', { capability: ['all'] }],
    ['--private-network', { privateNetwork: true }],
    ['--ambient-capability=CAP_NET_RAW', { ambientCapability: ['CAP_NET_RAW'] }],
    ['--private-users=1879048192:65536', { privateUsers: { mode: 'fixed', shift: 1879048192, range: 65536 } }],
  ] as Array<[string, Settings]>) {
    it(`root, ${name}`, async () => {
      const r = await run(tree(), { ...s, parameters: STATUS });
      expect(r.code, r.log.join('\n')).toBe(0);
      expect(r.out.trim().split('\n')).toEqual(expected(s, 0));
    });
  }

  it('--user without ambient capabilities: nothing but the bounding set', async () => {
    const r = await run(tree(), { user: 'al', parameters: STATUS });
    expect(r.code, r.log.join('\n')).toBe(0);
    expect(r.out.trim().split('\n')).toEqual(expected({}, 1000));
    expect(r.out).toMatch(/^CapEff:\t0{16}$/m);
  });

  it('--user with --ambient-capability=CAP_NET_RAW: the ambient capability survives the exec, in every set', async () => {
    const s: Settings = { ambientCapability: ['CAP_NET_RAW'] };
    const r = await run(tree(), { ...s, user: 'al', parameters: STATUS });
    expect(r.code, r.log.join('\n')).toBe(0);
    expect(r.out.trim().split('\n')).toEqual(expected(s, 1000));
    expect(r.out).toMatch(/^CapAmb:\t0000000000002000$/m);
  });

  it('-a: the stub init and the payload get the same sets', async () => {
    const r = await run(tree(), { startMode: 'pid2', parameters: ['/bin/sh', '-c', "grep -E '^CapBnd' /proc/1/status /proc/self/status"] });
    const bnd = expected({}, 0)[3]!.replace('CapBnd:\t', '');
    expect(r.out.trim().split('\n')).toEqual([`/proc/1/status:CapBnd:\t${bnd}`, `/proc/self/status:CapBnd:\t${bnd}`]);
  });

  it('warns about capabilities missing from the bounding set unless quiet', async () => {
    const missing = capabilityQuintet(containerCapabilities({}), 0, host.bounding, host.lastCap).dropped !== 0n;
    const t = tree();
    const loud = await run(t, { consoleMode: 'read-only', parameters: ['/bin/true'] });
    expect(loud.log.includes(CAPABILITIES_NOT_IN_BOUNDING_SET)).toBe(missing);
    const quiet = await run(t, { consoleMode: 'read-only', quiet: true, parameters: ['/bin/true'] });
    expect(quiet.log).not.toContain(CAPABILITIES_NOT_IN_BOUNDING_SET);
  });

  it('a dropped capability is really gone: chown fails without CAP_CHOWN', async () => {
    const r = await run(tree(), { dropCapability: ['CAP_CHOWN'], parameters: ['/bin/sh', '-c', 'touch /tmp/f; chown 1:1 /tmp/f 2>/dev/null && echo chowned || echo refused'] });
    expect(r.out.trim()).toBe('refused');
  });
});

describe('keyring', () => {
  it('the container has a session keyring of its own', async () => {
    const t = tree();
    // a tiny static program: the serial of the session keyring it runs in (0 when it has none)
    const src = join(t.dir, 'ses.c');
    writeFileSync(
      src,
      '#include <stdio.h>\n#include <unistd.h>\n#include <sys/syscall.h>\n' +
        'int main(void){ long k = syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* KEY_SPEC_SESSION_KEYRING */, 0);' +
        ' printf("%ld\\n", k); return 0; }\n',
    );
    await execa('cc', ['-static', '-O2', '-o', `${t.root}/ses`, src]);
    chmodSync(`${t.root}/ses`, 0o755);
    const hostSession = (await execa(`${t.root}/ses`)).stdout.trim();
    // keyctl() is refused by the seccomp filter (as under systemd-nspawn): look at the keyring without it
    const r = await run(t, { parameters: ['/ses'] }, { ...process.env, SYSTEMD_SECCOMP: '0' });
    expect(r.code, r.log.join('\n')).toBe(0);
    const inside = r.out.trim();
    expect(Number(inside)).toBeGreaterThan(0);
    expect(inside).not.toBe(hostSession);
  });
});
