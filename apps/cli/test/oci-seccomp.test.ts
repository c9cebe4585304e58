/**
 * `linux.seccomp` side by side with runc (1.1.5, libseccomp 2.5.4): one busybox bundle with a static probe
 * (fixtures/seccomp-probe.c) as its process, run in the foreground by runc and by nspawn-oci with the same profile,
 * and the probe's lines (each call's errno, SIGSYS, or the signal that killed it; the Seccomp lines of
 * /proc/self/status) must be the same. Profiles: podman's default (/usr/share/containers/seccomp.json, resolved
 * for x86_64 and the default capabilities as podman resolves it), and hand-written ones for each action, each
 * operator, several arguments, several rules, the architectures; with and without noNewPrivileges; malformed ones
 * must be refused by both with the same exit status and runc's wording.
 *
 * Needs root, gcc, runc and golang-github-containers-common (scripts/setup.sh --test); fails, never skips, without.
 */
import { execa } from 'execa';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, REPO } from './helpers/containers.js';

const NSPAWN_OCI = join(REPO, 'apps/cli/bin/nspawn-oci');
const PODMAN_PROFILE = '/usr/share/containers/seccomp.json';
const ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };
let base: ReturnType<typeof makeTempDir> | undefined;
let bundle = '';
let template: Record<string, any> = {};
let serial = 0;

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error('oci-seccomp: needs root');
  if (!existsSync('/usr/sbin/runc')) throw new Error('oci-seccomp: runc is missing (scripts/setup.sh --test installs it)');
  if (!existsSync(PODMAN_PROFILE)) throw new Error(`oci-seccomp: ${PODMAN_PROFILE} is missing (apt-get install golang-github-containers-common)`);
  base = makeTempDir('nspawn-oci-seccomp-');
  bundle = join(base.dir, 'bundle');
  for (const d of ['state-runc', 'state-oci']) mkdirSync(join(base.dir, d));
  await execa(join(REPO, 'scripts/make-busybox-tree.sh'), [join(bundle, 'rootfs')], { stdout: 'ignore' });
  await execa('gcc', ['-static', '-O1', '-o', join(bundle, 'rootfs/probe'), join(REPO, 'apps/cli/test/fixtures/seccomp-probe.c')]);
  await execa(NSPAWN_OCI, ['spec', '-b', bundle], { env: ENV });
  template = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
  template.process.terminal = false;
}, 120_000);

afterAll(async () => {
  if (!base) return;
  for (const [rt, st] of [['/usr/sbin/runc', 'state-runc'], [NSPAWN_OCI, 'state-oci']] as const) {
    const dir = join(base.dir, st);
    for (const id of existsSync(dir) ? readdirSync(dir) : []) await execa(rt, ['--root', dir, 'delete', '-f', id], { env: ENV, reject: false });
  }
  expect(base.remove()).toEqual([]);
});

interface Outcome {
  code: number | undefined;
  out: string;
  err: string;
}

/** Runs the probe with ARGS under both runtimes with SECCOMP as linux.seccomp. */
async function both(seccomp: unknown, args: string[], nnp = true): Promise<{ runc: Outcome; oci: Outcome }> {
  const spec = structuredClone(template);
  spec.process.args = ['/probe', ...args];
  spec.process.noNewPrivileges = nnp;
  if (seccomp !== undefined) spec.linux.seccomp = seccomp;
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec, null, 2));
  const res: Record<string, Outcome> = {};
  for (const [name, rt, st] of [['runc', '/usr/sbin/runc', 'state-runc'], ['oci', NSPAWN_OCI, 'state-oci']] as const) {
    const id = `oci-seccomp-${process.pid}-${serial++}`;
    const r = await execa(rt, ['--root', join(base!.dir, st), 'run', '-b', bundle, id], { env: ENV, reject: false, timeout: 60_000 });
    res[name] = { code: r.exitCode, out: r.stdout, err: r.stderr };
    expect(readdirSync(join(base!.dir, st)), `${name} left its state`).toEqual([]);
  }
  return { runc: res.runc!, oci: res.oci! };
}

/** The same lines and exit status under both; returns nspawn-oci's lines. */
async function same(seccomp: unknown, args: string[], nnp = true): Promise<string[]> {
  const { runc, oci } = await both(seccomp, args, nnp);
  expect(runc.code, `runc: ${runc.err}`).toBe(0);
  expect(oci.out, `nspawn-oci's stderr: ${oci.err}`).toBe(runc.out);
  expect(oci.code).toBe(runc.code);
  return oci.out.split('\n');
}

/** containers-common's profile as podman resolves it for a container on x86_64 with CAPS (pkg/seccomp). */
function podmanProfile(caps: string[]): unknown {
  const p = JSON.parse(readFileSync(PODMAN_PROFILE, 'utf8'));
  const archMap = p.archMap.find((a: any) => a.architecture === 'SCMP_ARCH_X86_64');
  const syscalls = [];
  for (const s of p.syscalls) {
    const inc = s.includes ?? {};
    const exc = s.excludes ?? {};
    if (inc.arches?.length && !inc.arches.includes('amd64')) continue;
    if (exc.arches?.includes('amd64')) continue;
    if (inc.caps?.length && !inc.caps.every((c: string) => caps.includes(c))) continue;
    if (exc.caps?.some((c: string) => caps.includes(c))) continue;
    syscalls.push({ names: s.names, action: s.action, ...(s.errnoRet !== undefined ? { errnoRet: s.errnoRet } : {}), ...(s.args?.length ? { args: s.args } : {}) });
  }
  return { defaultAction: p.defaultAction, defaultErrnoRet: p.defaultErrnoRet, architectures: [archMap.architecture, ...archMap.subArchitectures], syscalls };
}

// x86_64 numbers of calls that ignore their arguments (the filter sees them all the same)
const GETPPID = 110, GETUID = 102, GETGID = 104, GETEUID = 107, GETEGID = 108, GETPGRP = 111, GETTID = 186, SCHED_YIELD = 24, GETSID = 124;
/** LABEL=NR,ARGS for the probe; NR may be 'i386:N' or 'x32:N' */
const call = (label: string, nr: number | string, ...a: Array<number | bigint>) => `${label}=${[nr, ...a].map((x) => (typeof x === 'string' ? x : `0x${x.toString(16)}`)).join(',')}`;
const ALLOW_ALL = { defaultAction: 'SCMP_ACT_ALLOW' };

describe('nspawn-oci linux.seccomp beside runc', () => {
  it('podman\'s default profile: denials, the -ENOSYS stub, Seccomp: 2 (noNewPrivileges, and without it)', async () => {
    const caps = template.process.capabilities.bounding as string[];
    const profile = podmanProfile(caps);
    const args = [
      'status',
      call('getpid', 39),
      call('personality-query', 135, 0xffffffff),
      call('personality-addr-no-randomize', 135, 0x40000),
      call('chroot', 161, 0),
      call('kexec_load', 246, 0, 0, 0, 0),
      call('unknown-9999', 9999),
      call('i386-getpid', 'i386:20'),
      call('x32-getpid', 'x32:39'),
      call('i386-9999', 'i386:9999'),
      // the NETLINK_AUDIT rule (no CAP_AUDIT_WRITE in the spec): x86_64, x86's direct socket(), x86's socketcall()
      call('socket-audit', 41, 16, 3, 9),
      call('i386-socket-audit', 'i386:359', 16, 3, 9),
      call('i386-socketcall', 'i386:102', 1, 0),
    ];
    for (const nnp of [true, false]) {
      const lines = await same(profile, args, nnp);
      expect(lines).toContain('Seccomp:\t2');
      expect(lines).toContain('personality-addr-no-randomize: ENOSYS');
      expect(lines).toContain('chroot: EPERM');
      expect(lines).toContain('kexec_load: EPERM');
      expect(lines).toContain('getpid: ok');
    }
    // podman's own default capabilities have no CAP_AUDIT_WRITE: the profile keeps its NETLINK_AUDIT rules
    const noAudit = await same(podmanProfile(caps.filter((c) => c !== 'CAP_AUDIT_WRITE')), args);
    expect(noAudit).toContain('socket-audit: EINVAL');
  }, 120_000);

  it('each action: ERRNO with and without errnoRet, KILL, KILL_THREAD, KILL_PROCESS, TRAP, LOG, TRACE, ALLOW', async () => {
    const profile = {
      defaultAction: 'SCMP_ACT_ALLOW',
      syscalls: [
        { names: ['getppid'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 },
        { names: ['getuid'], action: 'SCMP_ACT_ERRNO' },
        { names: ['getgid'], action: 'SCMP_ACT_KILL' },
        { names: ['getegid'], action: 'SCMP_ACT_KILL_PROCESS' },
        { names: ['gettid'], action: 'SCMP_ACT_KILL_THREAD' },
        { names: ['geteuid'], action: 'SCMP_ACT_TRAP' },
        { names: ['getpgrp'], action: 'SCMP_ACT_LOG' },
        { names: ['sched_yield'], action: 'SCMP_ACT_TRACE', errnoRet: 5 },
        { names: ['getsid', 'no_such_call'], action: 'SCMP_ACT_ALLOW' },
      ],
    };
    const lines = await same(profile, ['status', call('getppid', GETPPID), call('getuid', GETUID), call('getgid', GETGID), call('getegid', GETEGID), call('gettid', GETTID), call('geteuid', GETEUID), call('getpgrp', GETPGRP), call('sched_yield', SCHED_YIELD), call('getsid', GETSID)]);
    expect(lines).toEqual(expect.arrayContaining(['getppid: EACCES', 'getuid: EPERM', 'getgid: killed by signal 31', 'getegid: killed by signal 31', 'gettid: killed by signal 31', 'geteuid: SIGSYS', 'getpgrp: ok', 'getsid: ok']));
  }, 60_000);

  it('defaultAction ERRNO with defaultErrnoRet, with and without the architectures (the -ENOSYS stub)', async () => {
    const allow = (podmanProfile(template.process.capabilities.bounding) as { syscalls: Array<{ names: string[]; action: string }> }).syscalls.filter((s) => s.action === 'SCMP_ACT_ALLOW' && !('args' in s));
    const args = ['status', call('getpid', 39), call('kexec_load', 246, 0, 0, 0, 0), call('unknown-999', 999), call('i386-getpid', 'i386:20')];
    for (const architectures of [undefined, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86']]) {
      const profile = { defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: 95, ...(architectures ? { architectures } : {}), syscalls: allow };
      const lines = await same(profile, args);
      expect(lines).toContain('kexec_load: EOPNOTSUPP');
      expect(lines).toContain(architectures ? 'unknown-999: ENOSYS' : 'unknown-999: EOPNOTSUPP');
    }
  }, 60_000);

  it('each operator, 64-bit values, several arguments, a repeated index, several rules, on x86_64 and i386', async () => {
    const V = 0x100000005n; // a high word and a low word
    const rule = (name: string, op: string, errnoRet: number, extra: object = {}) => ({ names: [name], action: 'SCMP_ACT_ERRNO', errnoRet, args: [{ index: 1, value: Number(V), valueTwo: 0, op, ...extra }] });
    const profile = {
      defaultAction: 'SCMP_ACT_ALLOW',
      architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86'],
      syscalls: [
        rule('getppid', 'SCMP_CMP_NE', 1),
        rule('getuid', 'SCMP_CMP_LT', 2),
        rule('getgid', 'SCMP_CMP_LE', 3),
        rule('geteuid', 'SCMP_CMP_EQ', 4),
        rule('getegid', 'SCMP_CMP_GE', 5),
        rule('getpgrp', 'SCMP_CMP_GT', 6),
        // (arg1 & 0x1_0000_00ff) == 0x1_0000_0005
        { names: ['gettid'], action: 'SCMP_ACT_ERRNO', errnoRet: 7, args: [{ index: 1, value: 0x1000000ff, valueTwo: 0x100000005, op: 'SCMP_CMP_MASKED_EQ' }] },
        // all of them must hold
        { names: ['sched_yield'], action: 'SCMP_ACT_ERRNO', errnoRet: 8, args: [{ index: 0, value: 1, op: 'SCMP_CMP_EQ' }, { index: 2, value: 5, op: 'SCMP_CMP_GT' }] },
        // the same index twice: runc makes two rules, either holds
        { names: ['getsid'], action: 'SCMP_ACT_ERRNO', errnoRet: 9, args: [{ index: 0, value: 1, op: 'SCMP_CMP_EQ' }, { index: 0, value: 2, op: 'SCMP_CMP_EQ' }] },
        // two rules for one call
        { names: ['getpgid'], action: 'SCMP_ACT_ERRNO', errnoRet: 10, args: [{ index: 0, value: 100, op: 'SCMP_CMP_EQ' }] },
        { names: ['getpgid'], action: 'SCMP_ACT_ERRNO', errnoRet: 11, args: [{ index: 0, value: 200, op: 'SCMP_CMP_EQ' }] },
      ],
    };
    const probes = [0n, 5n, 4n, 6n, V - 1n, V, V + 1n, 1n << 33n, 0xffffffff00000005n, 0x1000000f5n, 0x200000005n];
    const args = ['status'];
    for (const [name, nr, i386] of [['getppid', GETPPID, 64], ['getuid', GETUID, 24], ['getgid', GETGID, 47], ['geteuid', GETEUID, 49], ['getegid', GETEGID, 50], ['getpgrp', GETPGRP, 65], ['gettid', GETTID, 224]] as const)
      for (const p of probes) {
        args.push(call(`${name}-${p.toString(16)}`, nr, 0, p));
        args.push(`i386-${name}-${p.toString(16)}=i386:${i386},0,0x${p.toString(16)}`);
      }
    for (const [a0, a2] of [[1, 6], [1, 5], [0, 6], [1, 0x100000000]] as const) args.push(call(`sched_yield-${a0}-${a2}`, SCHED_YIELD, a0, 0, a2));
    for (const a0 of [0, 1, 2, 3]) args.push(call(`getsid-${a0}`, GETSID, a0));
    for (const a0 of [100, 200, 300]) args.push(call(`getpgid-${a0}`, 121, a0));
    const lines = await same(profile, args);
    expect(lines).toEqual(expect.arrayContaining([`getppid-0: EPERM`, `geteuid-${V.toString(16)}: EINTR`, 'gettid-100000005: E2BIG', 'gettid-1000000f5: ok', 'i386-gettid-200000005: E2BIG', 'sched_yield-1-6: ENOEXEC', 'getsid-2: EBADF', 'getpgid-200: EAGAIN']));
  }, 120_000);

  it('x86\'s socketcall() and ipc(): a rule for a socket or IPC call holds for its multiplexed form too, without its comparisons', async () => {
    const profile = { defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86'], syscalls: [{ names: ['socket'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 }, { names: ['bind'], action: 'SCMP_ACT_ERRNO', errnoRet: 6, args: [{ index: 0, value: 99, op: 'SCMP_CMP_EQ' }] }, { names: ['semget'], action: 'SCMP_ACT_ERRNO', errnoRet: 5 }, { names: ['recv'], action: 'SCMP_ACT_ERRNO', errnoRet: 7 }] };
    const { runc, oci } = await both(profile, [call('socket', 41, 99), call('i386-socket', 'i386:359', 99), call('i386-socketcall', 'i386:102', 1, 0), call('i386-socketcall-bind-99', 'i386:102', 2, 99), call('i386-socketcall-bind-0', 'i386:102', 2, 0), call('i386-bind-99', 'i386:361', 99), call('i386-ipc-semget', 'i386:117', 2, 0), call('i386-socketcall-recv', 'i386:102', 10, 0)]);
    expect(runc.code, runc.err).toBe(0);
    expect(oci.out).toBe(runc.out);
    expect(oci.out.split('\n')).toEqual(expect.arrayContaining(['i386-socketcall: EACCES', 'i386-ipc-semget: EIO', 'i386-socketcall-recv: E2BIG', 'i386-bind-99: ENXIO', 'i386-socketcall-bind-0: ENXIO']));
  }, 60_000);

  it('an ABI the profile does not list: killed (libseccomp\'s bad-architecture action)', async () => {
    const profile = { defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_AARCH64'], syscalls: [{ names: ['getppid'], action: 'SCMP_ACT_ERRNO' }] };
    const lines = await same(profile, [call('getppid', GETPPID), 'i386-getpid=i386:20', 'x32-getpid=x32:39']);
    expect(lines).toEqual(expect.arrayContaining(['getppid: EPERM', 'i386-getpid: killed by signal 31', 'x32-getpid: killed by signal 31']));
  }, 60_000);

  it('exec: a process exec\'d into the container is under the same filter', async () => {
    const spec = structuredClone(template);
    spec.process.args = ['sleep', '60'];
    spec.linux.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['getppid'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 }] };
    writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec, null, 2));
    const outs: string[] = [];
    for (const [rt, st] of [['/usr/sbin/runc', 'state-runc'], [NSPAWN_OCI, 'state-oci']] as const) {
      const root = join(base!.dir, st);
      const id = `oci-seccomp-${process.pid}-${serial++}`;
      try {
        const c = await execa(rt, ['--root', root, 'create', '-b', bundle, id], { env: ENV, reject: false, stdin: 'ignore', stdout: 'ignore', stderr: 'ignore' });
        expect(c.exitCode).toBe(0);
        expect((await execa(rt, ['--root', root, 'start', id], { env: ENV, reject: false })).exitCode).toBe(0);
        const e = await execa(rt, ['--root', root, 'exec', id, '/probe', 'status', call('getppid', GETPPID), call('getpid', 39)], { env: ENV, reject: false });
        expect(e.exitCode, e.stderr).toBe(0);
        outs.push(e.stdout);
      } finally {
        await execa(rt, ['--root', root, 'delete', '-f', id], { env: ENV, reject: false });
      }
    }
    expect(outs[1]).toBe(outs[0]);
    expect(outs[1]!.split('\n')).toEqual(expect.arrayContaining(['Seccomp:\t2', 'getppid: EACCES', 'getpid: ok']));
  }, 60_000);

  it('no profile, or an empty one: no filter (Seccomp: 0)', async () => {
    for (const p of [undefined, {}, { syscalls: [] }]) expect(await same(p, ['status'])).toContain('Seccomp:\t0');
    expect(await same(ALLOW_ALL, ['status'])).toContain('Seccomp:\t2');
  }, 60_000);

  describe('malformed profiles: refused by both, same exit status, runc\'s words', () => {
    const cases: Array<[string, unknown, string]> = [
      ['an unknown action', { defaultAction: 'SCMP_ACT_FOO' }, 'string SCMP_ACT_FOO is not a valid action for seccomp'],
      ['an unknown rule action', { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['getpid'], action: 'NOPE' }] }, 'string NOPE is not a valid action for seccomp'],
      ['an unknown operator', { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['getpid'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value: 1, op: 'SCMP_CMP_XX' }] }] }, 'string SCMP_CMP_XX is not a valid operator for seccomp'],
      ['an unknown architecture', { defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_VAX'] }, 'string SCMP_ARCH_VAX is not a valid arch for seccomp'],
      ['no default action', { syscalls: [{ names: ['getpid'], action: 'SCMP_ACT_ERRNO' }] }, 'string  is not a valid action for seccomp'],
      ['an empty name', { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: [''], action: 'SCMP_ACT_ERRNO' }] }, 'empty string is not a valid syscall'],
      ['NOTIFY as the default', { defaultAction: 'SCMP_ACT_NOTIFY' }, 'SCMP_ACT_NOTIFY cannot be used as default action'],
    ];
    for (const [what, profile, words] of cases)
      it(what, async () => {
        const { runc, oci } = await both(profile, ['status']);
        expect(runc.code, runc.err).not.toBe(0);
        expect(runc.err).toContain(words);
        expect(oci.err).toContain(words);
        expect(oci.code).toBe(runc.code);
        expect(oci.out).toBe('');
      }, 60_000);
  });

  it('flags: runc 1.1.5 refuses any, nspawn-oci passes SPEC_ALLOW, LOG and TSYNC to seccomp(2) (runc 1.2\'s behaviour)', async () => {
    const profile = { ...ALLOW_ALL, flags: ['SECCOMP_FILTER_FLAG_SPEC_ALLOW', 'SECCOMP_FILTER_FLAG_LOG', 'SECCOMP_FILTER_FLAG_TSYNC'], syscalls: [{ names: ['getppid'], action: 'SCMP_ACT_ERRNO' }] };
    const { runc, oci } = await both(profile, ['status', call('getppid', GETPPID)]);
    expect(runc.err).toContain('seccomp flags are not yet supported by runc');
    expect(oci.code, oci.err).toBe(0);
    expect(oci.out.split('\n')).toEqual(expect.arrayContaining(['Seccomp:\t2', 'getppid: EPERM']));
    const bad = await both({ ...ALLOW_ALL, flags: ['SECCOMP_FILTER_FLAG_NOPE'] }, ['status']);
    expect(bad.oci.code).toBe(bad.runc.code);
    expect(bad.oci.err).toContain('seccomp flag "SECCOMP_FILTER_FLAG_NOPE" is not supported');
  }, 60_000);
});
