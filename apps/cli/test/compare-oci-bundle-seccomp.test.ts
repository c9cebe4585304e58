/**
 * --oci-bundle= with linux.seccomp side by side with systemd-nspawn 252 (nspawn-oci.c oci_seccomp(): the bundle's
 * filter loaded with libseccomp in place of nspawn's own): a busybox bundle with the static seccomp probe
 * (fixtures/seccomp-probe.c) as its process, the same config.json under both tools; the probe's lines (each call's
 * errno, SIGSYS or killing signal, the Seccomp and NoNewPrivs lines of /proc/self/status) and the exit status must
 * match, and what libseccomp refuses must fail both starts.
 *
 * Needs root, gcc and /usr/bin/systemd-nspawn; it fails, never skips, without them.
 */
import { execa } from 'execa';
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxTree } from './helpers/busybox-tree.js';
import { makeTempDir, mountsUnder, REPO, requireRootAndSystemdNspawn, runTool, type Tool, TOOL_ENV, TOOLS } from './helpers/containers.js';

const ROOT = 'nt-ocisc-root';
const NS = [{ type: 'mount' }, { type: 'pid' }, { type: 'uts' }, { type: 'ipc' }, { type: 'cgroup' }];
let tmp: ReturnType<typeof makeTempDir>;
let template = '';
let runNo = 0;

beforeAll(async () => {
  requireRootAndSystemdNspawn();
  tmp = makeTempDir('nt-ocisc-');
  template = makeBusyboxTree(join(tmp.dir, 'template'), { probe: false });
  await execa('gcc', ['-static', '-O1', '-o', join(template, 'probe'), join(REPO, 'apps/cli/test/fixtures/seccomp-probe.c')]);
}, 120_000);
afterAll(() => {
  expect(tmp.remove()).toEqual([]);
});

async function run(tool: Tool, seccomp: unknown, args: string[]) {
  const bundle = join(tmp.dir, `run${++runNo}-${tool}`);
  cpSync(template, join(bundle, ROOT), { recursive: true, verbatimSymlinks: true });
  const config = { ociVersion: '1.0.0', root: { path: ROOT }, process: { args: ['/probe', ...args] }, linux: { namespaces: NS, seccomp } };
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(config, null, 2));
  const r = await runTool(tool, ['-q', `--oci-bundle=${bundle}`], { env: TOOL_ENV });
  expect(mountsUnder(bundle), `${tool} left mounts`).toEqual([]);
  return { status: r.status, lines: r.stdout.replace(/\r\n/g, '\n').split('\n').filter((l) => l !== '') };
}

async function same(seccomp: unknown, args: string[]) {
  const seen: Record<string, { status: number | null; lines: string[] }> = {};
  for (const tool of TOOLS) seen[tool] = await run(tool, seccomp, args);
  expect(seen.nspawn).toEqual(seen['systemd-nspawn']);
  return seen.nspawn!;
}

// x86_64 calls that ignore their arguments and that neither tool makes itself once the filter is loaded (systemd's
// inner child goes on calling getuid() and friends after it: a profile killing those ends its start)
const GETPPID = 110, GETSID = 124, SCHED_YIELD = 24, GETPGID = 121, GETITIMER = 36, GETPGRP = 111, GETTID = 186;

describe('--oci-bundle= linux.seccomp as systemd-nspawn 252', () => {
  it('actions (ERRNO is EPERM), operators, several arguments, ABIs; no_new_privs; one filter instead of nspawn\'s', async () => {
    const V = 0x100000005;
    const arg = (op: string, extra: object = {}) => ({ index: 1, value: V, op, ...extra });
    const profile = {
      defaultAction: 'SCMP_ACT_ALLOW',
      architectures: ['SCMP_ARCH_X86'],
      syscalls: [
        { names: ['getppid', 'no_such_call'], action: 'SCMP_ACT_ERRNO', args: [arg('SCMP_CMP_NE')] },
        { names: ['getsid'], action: 'SCMP_ACT_KILL', args: [arg('SCMP_CMP_LT')] },
        { names: ['sched_yield'], action: 'SCMP_ACT_TRAP', args: [arg('SCMP_CMP_GE')] },
        { names: ['getpgid'], action: 'SCMP_ACT_KILL_PROCESS', args: [arg('SCMP_CMP_GT')] },
        { names: ['getitimer'], action: 'SCMP_ACT_LOG', args: [arg('SCMP_CMP_EQ')] },
        { names: ['getpgrp'], action: 'SCMP_ACT_ERRNO', args: [arg('SCMP_CMP_LE'), { index: 0, value: 1, op: 'SCMP_CMP_EQ' }] },
        { names: ['gettid'], action: 'SCMP_ACT_ERRNO', args: [{ index: 1, value: 0x1000000ff, valueTwo: V, op: 'SCMP_CMP_MASKED_EQ' }] },
        { names: ['kexec_load'], action: 'SCMP_ACT_KILL_THREAD' },
      ],
    };
    const args = ['status'];
    for (const [name, nr] of [['getppid', GETPPID], ['getsid', GETSID], ['sched_yield', SCHED_YIELD], ['getpgid', GETPGID], ['getitimer', GETITIMER], ['getpgrp', GETPGRP], ['gettid', GETTID]] as const)
      for (const [a0, a1] of [[1, 0], [1, 5], [1, V], [0, V], [1, V + 1], [1, V - 1], [1, 0xffffffff00000000]] as const)
        args.push(`${name}-${a0}-${a1.toString(16)}=${nr},${a0},0x${a1.toString(16)}`);
    args.push('i386-getppid=i386:64,0,5', 'x32-getpid=x32:39', 'kexec=246', 'socket-audit=41,16,3,9', 'beyond=999');
    const seen = await same(profile, args);
    expect(seen.status).toBe(0);
    expect(seen.lines).toEqual(expect.arrayContaining(['NoNewPrivs:\t1', 'Seccomp:\t2', 'Seccomp_filters:\t1', 'getppid-1-0: EPERM', 'kexec: killed by signal 31', 'x32-getpid: killed by signal 31', 'beyond: ENOSYS']));
  }, 120_000);

  it('x86\'s socketcall() and ipc(): a socket or IPC call\'s rule holds for its multiplexed form too, without its comparisons', async () => {
    const profile = {
      defaultAction: 'SCMP_ACT_ALLOW',
      architectures: ['SCMP_ARCH_X86'],
      syscalls: [
        { names: ['socket', 'semget'], action: 'SCMP_ACT_ERRNO' },
        { names: ['bind'], action: 'SCMP_ACT_TRAP', args: [{ index: 0, value: 99, op: 'SCMP_CMP_EQ' }] },
      ],
    };
    const seen = await same(profile, ['i386-socket=i386:359,99', 'i386-socketcall=i386:102,1,0', 'i386-ipc-semget=i386:117,2,0', 'i386-bind-99=i386:361,99', 'i386-bind-0=i386:361,0', 'i386-socketcall-bind=i386:102,2,0', 'i386-socketcall-listen=i386:102,4,0']);
    expect(seen.status).toBe(0);
    expect(seen.lines).toEqual(['i386-socket: EPERM', 'i386-socketcall: EPERM', 'i386-ipc-semget: EPERM', 'i386-bind-99: SIGSYS', 'i386-bind-0: ENOTSOCK', 'i386-socketcall-bind: SIGSYS', 'i386-socketcall-listen: EFAULT']);
  }, 120_000);

  it('what libseccomp refuses fails the start under both: a rule with the default action, an argument compared twice', async () => {
    for (const profile of [
      { defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['getppid'], action: 'SCMP_ACT_ERRNO' }] },
      { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['getppid'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value: 1, op: 'SCMP_CMP_EQ' }, { index: 0, value: 2, op: 'SCMP_CMP_EQ' }] }] },
      { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['getppid'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 }] },
    ]) {
      const seen = await same(profile, ['status']);
      expect(seen.status).toBe(1);
      expect(seen.lines).toEqual([]);
    }
  }, 120_000);
});
