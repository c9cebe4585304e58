/**
 * Root integration: the seccomp filter side by side with systemd-nspawn 252.
 *
 * 1. A probe (fixtures/seccomp-probe.c, built with gcc -static for x86_64 and with -m32 for i386) calls system
 *    calls with harmless arguments in a busybox tree under systemd-nspawn and under nspawn (apps/cli/bin/nspawn);
 *    both must print the same results, and some results are checked outright.
 * 2. The filters themselves: fixtures/seccomp-dump.c reads them out of a running container with
 *    PTRACE_SECCOMP_GET_FILTER. systemd-nspawn's stack of libseccomp filters and nspawn's single program must give
 *    every (ABI, number, arguments) of a large grid the same action (run in src/seccomp/bpf.ts's interpreter),
 *    and nspawn's program must be the one src/seccomp builds.
 *
 * Needs root, /usr/bin/systemd-nspawn, gcc with -m32 (gcc-multilib) and a built CLI; fails, never skips, without.
 */
import { spawn } from 'node:child_process';
import { execa, execaSync } from 'execa';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AUDIT_ARCH,
  containerCapabilities,
  nspawnSeccompFilter,
  runFilter,
  runFilters,
  SECCOMP_RET,
  type SeccompData,
  type SockFilter,
  X32_SYSCALL_BIT,
} from '../src/index.js';
import { makeTree, NSPAWN_BIN, referenceCommand, requireRoot, SYSTEMD_NSPAWN } from './helpers.js';
// @ts-expect-error: a plain .mjs of the repository's scripts, without types
import { kernelRunsI386 } from '../../../scripts/kernel-facts.mjs';

/**
 * The i386 probes need a kernel that runs i386 programs (IA32 emulation). Where it does not, the i386 cases skip,
 * and scripts/skip-allow-list.mjs allows exactly those skips only when it finds the same (the check runs again
 * when the summary is made); the x86_64 and x32 cases run everywhere.
 */
const I386: boolean = (kernelRunsI386() as { ok: boolean }).ok;

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
const ENV: NodeJS.ProcessEnv = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', TERM: 'dumb' };
type Tool = 'systemd-nspawn' | 'nspawn';

let tree: ReturnType<typeof makeTree> | undefined;
let dumper = '';

beforeAll(() => {
  requireRoot();
  if (!existsSync(SYSTEMD_NSPAWN)) throw new Error(`${SYSTEMD_NSPAWN} is missing: install systemd-container (scripts/setup.sh --test)`);
  const v = execaSync(process.execPath, [NSPAWN_BIN, '--version'], { timeout: 20000, reject: false });
  if (v.exitCode !== 0) throw new Error(`${NSPAWN_BIN} --version failed (run 'pnpm build'): ${v.stderr}`);
  tree = makeTree('nspawn-seccomp-');
  const cc = (args: string[]) => {
    const r = execaSync('gcc', ['-O1', '-Wall', ...args], { reject: false });
    if (r.exitCode !== 0) throw new Error(`gcc ${args.join(' ')} failed:\n${r.stderr}${r.failed ? r.shortMessage : ''}`);
  };
  cc(['-static', '-o', join(tree.root, 'probe64'), join(FIXTURES, 'seccomp-probe.c')]);
  try {
    cc(['-m32', '-static', '-o', join(tree.root, 'probe32'), join(FIXTURES, 'seccomp-probe.c')]);
  } catch (e) {
    throw new Error(`the i386 probe needs gcc -m32 (Debian: gcc-multilib, installed by scripts/setup.sh --test): ${(e as Error).message}`);
  }
  dumper = join(tree.dir, 'seccomp-dump');
  cc(['-o', dumper, join(FIXTURES, 'seccomp-dump.c')]);
});

afterAll(() => tree?.cleanup());

function argv(tool: Tool, args: string[], command: string[]): [string, string[]] {
  const common = ['--register=no', '--keep-unit', '-q', '-D', tree!.root, ...args, ...command];
  return tool === 'systemd-nspawn' ? referenceCommand(common) : [process.execPath, [NSPAWN_BIN, ...common]];
}

/** Lines systemd-nspawn prints on this host that have nothing to do with seccomp. */
const hostNoise = (l: string) => l === '' || l.startsWith('Attempted to remove disk file system under');

// asynchronous (execa): two containers per case, and a synchronous wait blocks the vitest worker
async function probe(tool: Tool, args: string[], binary = '/probe64'): Promise<{ status: number | null; results: Map<string, string>; stderr: string[] }> {
  const [cmd, a] = argv(tool, args, [binary]);
  const r = await execa(cmd, a, { input: '', env: ENV, extendEnv: false, timeout: 20000, killSignal: 'SIGKILL', reject: false, stripFinalNewline: false });
  const results = new Map<string, string>();
  for (const line of String(r.stdout ?? '').split('\n')) {
    const m = /^(status \w+|\w+):\s+(.*)$/.exec(line.trim());
    if (m) results.set(m[1]!, m[2]!);
  }
  return { status: r.exitCode ?? null, results, stderr: String(r.stderr ?? '').split('\n').filter((l) => !hostNoise(l)) };
}

/** Runs the probe under both tools; returns nspawn's results after checking they are systemd-nspawn's. */
async function sideBySide(args: string[], binary = '/probe64'): Promise<Map<string, string>> {
  const sd = await probe('systemd-nspawn', args, binary);
  const ns = await probe('nspawn', args, binary);
  expect(sd.status, `systemd-nspawn ${args.join(' ')}: ${sd.stderr.join('\n')}`).toBe(0);
  expect(ns.status, `nspawn ${args.join(' ')}: ${ns.stderr.join('\n')}`).toBe(0);
  expect(sd.results.size).toBeGreaterThan(20);
  // one filter per architecture and concern under systemd-nspawn, one program under nspawn
  const sdFilters = sd.results.get('status Seccomp_filters');
  sd.results.delete('status Seccomp_filters');
  expect(ns.results.get('status Seccomp_filters')).toBe('1');
  expect(Number(sdFilters)).toBeGreaterThanOrEqual(5);
  ns.results.delete('status Seccomp_filters');
  expect(Object.fromEntries(ns.results), `nspawn ${args.join(' ')} ${binary}`).toEqual(Object.fromEntries(sd.results));
  expect(ns.stderr, 'what nspawn says').toEqual(sd.stderr);
  return ns.results;
}

describe('system calls in a container, side by side with systemd-nspawn 252', () => {
  it('default: allowed, denied (EPERM), unknown (ENOSYS), NETLINK_AUDIT (EAFNOSUPPORT), in seccomp filter mode', async () => {
    const r = await sideBySide([]);
    expect(r.get('getpid')).toBe('ok');
    expect(r.get('kexec_load')).toBe('EPERM');
    expect(r.get('swapon')).toBe('EPERM');
    expect(r.get('add_key')).toBe('EPERM'); // @keyring is not allowed: the keyring is not namespaced
    expect(r.get('nr1000')).toBe('ENOSYS');
    expect(r.get('cachestat')).toBe('ENOSYS'); // the kernel has it, systemd 252 does not know it
    expect(r.get('fchmodat2')).toBe('ENOENT'); // allowed: reaches the kernel
    expect(r.get('audit_socket')).toBe('EAFNOSUPPORT');
    expect(r.get('route_socket')).toBe('ok');
    expect(r.get('clock_settime')).toBe('EPERM'); // @clock needs CAP_SYS_TIME
    expect(r.get('reboot')).toBe('EINVAL'); // CAP_SYS_BOOT is kept: reaches the kernel, which refuses the magic
    expect(r.get('x32_kexec_load')).toBe('EPERM');
    expect(r.get('x32_audit_socket')).toBe('EAFNOSUPPORT');
    expect(r.get('status Seccomp')).toBe('2');
    expect(r.get('status NoNewPrivs')).toBe('0'); // no PR_SET_NO_NEW_PRIVS needed: the filter goes in with CAP_SYS_ADMIN
  });

  it.skipIf(!I386)('the i386 ABI under --personality=x86 (no audit rule there: libseccomp cannot express it)', async () => {
    const r = await sideBySide(['--personality=x86'], '/probe32');
    expect(r.get('getpid')).toBe('ok');
    expect(r.get('kexec_load')).toBe('EPERM');
    expect(r.get('nr1000')).toBe('ENOSYS');
    expect(r.get('audit_socket')).toBe('ok');
    expect(r.get('socketcall_audit')).toBe('ok');
    expect(r.get('clock_settime')).toBe('EPERM');
  });

  it('--capability=CAP_SYS_TIME opens @clock; CAP_SYS_PACCT, CAP_SYSLOG and CAP_IPC_LOCK their calls', async () => {
    expect((await sideBySide(['--capability=CAP_SYS_TIME'])).get('clock_settime')).toBe('EINVAL'); // the kernel refuses CLOCK_MONOTONIC
    const r = await sideBySide(['--capability=CAP_SYS_PACCT,CAP_SYSLOG,CAP_IPC_LOCK']);
    expect([r.get('acct'), r.get('syslog'), r.get('mlock'), r.get('clock_settime')]).toEqual(['ok', 'ok', 'ok', 'EPERM']);
  });

  it.skipIf(!I386)('--capability=CAP_SYS_TIME opens @clock for the i386 ABI too', async () => {
    expect((await sideBySide(['--capability=CAP_SYS_TIME'], '/probe32')).get('clock_settime')).toBe('EINVAL');
  });

  it('--drop-capability=CAP_SYS_PTRACE,CAP_SYS_BOOT takes ptrace() and reboot() out of the filter', async () => {
    const r = await sideBySide(['--drop-capability=CAP_SYS_PTRACE,CAP_SYS_BOOT']);
    expect([r.get('ptrace'), r.get('reboot')]).toEqual(['EPERM', 'EPERM']);
  });

  it('--system-call-filter=~@clock denies @clock even with CAP_SYS_TIME; without it nothing changes', async () => {
    expect((await sideBySide(['--capability=CAP_SYS_TIME', '--system-call-filter=~@clock'])).get('clock_settime')).toBe('EPERM');
    expect((await sideBySide(['--system-call-filter=~@clock'])).get('clock_settime')).toBe('EPERM');
  });

  it('--system-call-filter=LIST allows more; an unknown group is reported as systemd-nspawn reports it', async () => {
    const r = await sideBySide(['--system-call-filter=kexec_load @keyring', '--system-call-filter=@nosuchgroup nosuchcall']);
    expect(r.get('kexec_load')).not.toBe('EPERM'); // reaches the kernel: EINVAL for the flags, or ENOSYS without kexec
    expect(r.get('keyctl')).toBe('ok');
    expect(r.get('add_key')).toBe('EINVAL');
    expect(r.get('swapon')).toBe('EPERM');
  });

  it('--system-call-filter=~LIST: a denied allowed call gets EPERM, the audit rule still wins', async () => {
    const r = await sideBySide(['--system-call-filter=~socket getppid']);
    expect(r.get('route_socket')).toBe('EPERM');
    expect(r.get('audit_socket')).toBe('EAFNOSUPPORT');
    expect(r.get('getpid')).toBe('ok');
  });

  const suppressSync = async (binary: string) => {
    const r = await sideBySide(['--suppress-sync=yes', ...(binary === '/probe32' ? ['--personality=x86'] : [])], binary);
    expect(r.get('fsync_stdout'), binary).toBe('ok');
    expect(r.get('fsync_badfd'), binary).toBe('EBADF');
    expect(r.get('open_osync'), binary).toBe('EINVAL');
    expect(r.get('open_plain'), binary).toBe('ok');
    expect(r.get('openat2'), binary).toBe('ENOSYS');
  };
  it('--suppress-sync=yes: fsync() does nothing, O_SYNC opens fail with EINVAL, openat2() gets ENOSYS', () => suppressSync('/probe64'));
  it.skipIf(!I386)('--suppress-sync=yes for the i386 ABI too', () => suppressSync('/probe32'));

  it('$SYSTEMD_SECCOMP=0 turns the filter off (nspawn)', async () => {
    const [cmd, a] = argv('nspawn', [], ['/probe64']);
    const r = await execa(cmd, a, { input: '', env: { ...ENV, SYSTEMD_SECCOMP: '0' }, extendEnv: false, timeout: 20000, reject: false, stripFinalNewline: false });
    expect(r.stdout).toMatch(/^status Seccomp:\s+0$/m);
    expect(r.stdout).toMatch(/^cachestat: EBADF$/m);
  });
});

// ---------- the filters themselves ----------

/** The filters of a running container's PID 1, oldest first, read with the dumper. */
async function containerFilters(tool: Tool, args: string[]): Promise<SockFilter[][]> {
  const marker = `${Math.floor(1000 + Math.random() * 9000)}.${process.pid}`; // sleep's argument: finds the process
  const [cmd, a] = argv(tool, args, ['/bin/sleep', marker]);
  const child = spawn(cmd, a, { stdio: ['ignore', 'ignore', 'pipe'], env: ENV });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((res) => child.on('exit', () => res()));
  let pid: number | undefined;
  try {
    for (let i = 0; i < 200 && pid === undefined; i++) {
      await new Promise((res) => setTimeout(res, 25));
      for (const p of readdirSync('/proc')) {
        if (!/^\d+$/.test(p)) continue;
        try {
          if (readFileSync(`/proc/${p}/cmdline`, 'utf8') === `/bin/sleep\0${marker}\0`) pid = Number(p);
        } catch {
          // gone
        }
      }
      if (child.exitCode !== null) break;
    }
    if (pid === undefined) throw new Error(`${tool} ${args.join(' ')}: the container did not start: ${stderr}`);
    const text = execaSync(dumper, [String(pid)], { stripFinalNewline: false }).stdout;
    const filters: SockFilter[][] = [];
    for (const line of text.split('\n')) {
      if (line.startsWith('filter ')) filters.push([]);
      else if (line) {
        const [code, jt, jf, k] = line.split(' ').map((x) => parseInt(x, 16));
        filters[filters.length - 1]!.push({ code: code!, jt: jt!, jf: jf!, k: k! >>> 0 });
      }
    }
    return filters;
  } finally {
    if (pid !== undefined)
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    if (child.exitCode === null && child.signalCode === null) {
      const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
      await exited;
      clearTimeout(timer);
    }
  }
}

/** A grid of inputs: every number of each ABI's range (and some far ones), with argument sets the rules look at. */
function* grid(): Generator<SeccompData> {
  const argSets: Array<Array<number | bigint>> = [
    [],
    [16, 3, 9],
    [16n | (1n << 32n), 3, 9n | (1n << 32n)],
    [-1n, 0o4010000, 0o10000],
    [0x7fffffff, 0o10000, 0],
    [0x80000000, 0, 0o4000000],
    [1n << 32n, 0o10000n << 32n, 0],
  ];
  const far = [0x3fffffff, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];
  const arches: Array<[number, number[]]> = [
    [AUDIT_ARCH.X86_64, [...range(0, 1100), ...range(X32_SYSCALL_BIT, X32_SYSCALL_BIT + 1100), ...far]],
    [AUDIT_ARCH.I386, [...range(0, 1100), X32_SYSCALL_BIT + 1, ...far]],
    [AUDIT_ARCH.AARCH64, [0, 1, 63, 222]],
  ];
  for (const [arch, nrs] of arches) for (const nr of nrs) for (const args of argSets) yield { nr, arch, args };
}
function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}
const word = (r: number) => (r === SECCOMP_RET.ALLOW ? 'allow' : (r & SECCOMP_RET.ACTION_FULL) >>> 0 === SECCOMP_RET.ERRNO ? `errno ${r & 0xffff}` : `0x${r.toString(16)}`);

describe('the filters, read out of running containers', () => {
  const scenarios: Array<[string, string[]]> = [
    ['default', []],
    ['private network (CAP_NET_ADMIN)', ['--private-network']],
    ['more capabilities and filter lists', ['--capability=CAP_SYS_TIME,CAP_SYS_MODULE,CAP_IPC_LOCK,CAP_SYSLOG', '--system-call-filter=~@clock kexec_load', '--system-call-filter=@keyring bpf']],
    ['fewer capabilities', ['--drop-capability=CAP_SYS_PTRACE,CAP_SYS_BOOT,CAP_SYS_TTY_CONFIG']],
    ['all capabilities, sync suppressed', ['--capability=all', '--suppress-sync=yes']],
    ['a deny list and sync suppressed', ['--system-call-filter=~@sync socket socketcall @timer getppid', '--suppress-sync=yes']],
  ];
  for (const [name, args] of scenarios)
    it(`${name}: ${args.join(' ') || 'no options'}`, async () => {
      const sd = await containerFilters('systemd-nspawn', args);
      const ns = await containerFilters('nspawn', args);
      expect(ns).toHaveLength(1);
      expect(sd.length).toBeGreaterThanOrEqual(5);

      // nspawn installed exactly what src/seccomp builds for these settings
      const settings = {
        privateNetwork: args.includes('--private-network'),
        capability: args.filter((a) => a.startsWith('--capability=')).flatMap((a) => a.slice(13).split(',')),
        dropCapability: args.filter((a) => a.startsWith('--drop-capability=')).flatMap((a) => a.slice(18).split(',')),
      };
      const lists = args.filter((a) => a.startsWith('--system-call-filter=')).map((a) => a.slice(21));
      const built = nspawnSeccompFilter({
        retainedCapabilities: containerCapabilities(settings).retain,
        allow: lists.filter((l) => !l.startsWith('~')).flatMap((l) => l.split(' ')),
        deny: lists.filter((l) => l.startsWith('~')).flatMap((l) => l.slice(1).split(' ')),
        suppressSync: args.includes('--suppress-sync=yes'),
      });
      expect(ns[0]).toEqual(built.program);

      // and it decides every input of the grid as systemd-nspawn's filters do together
      const differences: string[] = [];
      let n = 0;
      for (const d of grid()) {
        n++;
        const a = runFilters(sd, d);
        const b = runFilter(ns[0]!, d);
        if (a !== b && differences.length < 20)
          differences.push(`arch 0x${d.arch.toString(16)} nr 0x${d.nr.toString(16)} args ${(d.args ?? []).join(',')}: systemd ${word(a)}, nspawn ${word(b)}`);
      }
      expect(n).toBeGreaterThan(20000);
      expect(differences).toEqual([]);
    });
});
