/**
 * The escape battery (issue #4): fixtures/escape-probe.c, compiled statically into each busybox tree, tries from
 * inside the container what a root payload would try to get out (writable /proc/sys and /sys, kernel modules,
 * kexec, swap, the clock, a forged file handle, host processes, host keys, bpf and perf, the console, inherited
 * fds, the executables of PID 1 and of itself, the host's disk and other host devices (made with mknod or brought
 * by the image), a chroot breakout, remounting and unmasking the API file systems), once under systemd-nspawn and
 * once under nspawn, and every attempt must end the same way with the same errno, except the differences listed in
 * DIFFERENCES (each asserted, so it fails once fixed; the no-seccomp ones are expected only from an nspawn whose
 * payload runs without a seccomp filter, the stricter ones are where nspawn refuses on purpose).
 * reboot(RB_AUTOBOOT) runs last, in a container of its own, and must end only that container.
 *
 * Around every run: a host `sleep` whose PID the probe tries to kill, a host file open on fd 9, a session keyring
 * with a canary key (the probe's --host-wrap mode, which checks afterwards that no key changed), and checks
 * that the host's hostname, core_pattern and API mounts are as they were and that no mount is left behind.
 *
 * Needs root, gcc and /usr/bin/systemd-nspawn; it fails, never skips, without them.
 */
import type { ChildProcess } from 'node:child_process';
import { execa } from 'execa';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  COMMON_FLAGS,
  makeTempDir,
  mountsUnder,
  REPO,
  requireRootAndSystemdNspawn,
  type Tool,
  TOOL_ENV,
  toolCommand,
  TOOLS,
} from './helpers/containers.js';
import { ESCAPE_RESULT, type EscapeHost, hostState, type HostState, setUpEscapeHost } from './helpers/escape-host.js';

/** Every attempt of the battery, in the probe's order (only=reboot is run on its own). */
const ATTEMPTS = [
  'fd9-fstat',
  'fd9-read',
  'fd-scan',
  'write-proc-sys-hostname',
  'write-proc-sys-core-pattern',
  'open-sys-for-writing',
  'open-proc-sysrq-trigger',
  'init-module',
  'finit-module',
  'kexec-load',
  'swapon',
  'clock-settime',
  'settimeofday',
  'open-by-handle-at',
  'ptrace-pid1',
  'kill-all',
  'kill-host-pid',
  'keyctl-search-session',
  'request-key-canary',
  'keyctl-read-user-keyring',
  'keyctl-describe-host-session',
  'keyctl-read-host-session',
  'keyctl-read-host-key',
  'bpf-prog-load',
  'perf-event-open',
  'tiocsti-console',
  'write-proc-self-exe',
  'write-proc-1-exe',
  'reopen-proc-1-exe',
  'mknod-root-disk',
  'mknod-kmsg',
  'mknod-loop',
  'open-image-node',
  'chroot-breakout',
  'remount-sys-rw',
  'remount-proc-sys-rw',
  'umount-proc-kallsyms',
  'umount-proc-sys',
] as const;
type Attempt = (typeof ATTEMPTS)[number];

/** What this kernel has: a missing feature turns "allowed" into ENOSYS. */
const kernel = {
  modules: existsSync('/proc/modules'),
  kexec: existsSync('/proc/sys/kernel/kexec_load_disabled'),
  swap: existsSync('/proc/swaps'),
  sysrq: existsSync('/proc/sysrq-trigger'),
  /** systemd-nspawn masks /proc entries with these; without systemd as PID 1 they are missing and nothing is masked */
  inaccessibleNodes: existsSync('/run/systemd/inaccessible/reg'),
};

/**
 * An attempt that ends differently under the two tools, on purpose or for now. `nspawn` and `systemd` are the
 * expected results on this host; an entry whose two results are the same does not apply here.
 */
interface Difference {
  attempts: Attempt[];
  systemd: string;
  nspawn: string;
  /**
   * no-seccomp: systemd-nspawn's system call filter refuses it and the nspawn under test runs without one (a build
   * from before the filter, or one whose filter is missing); host: systemd-nspawn here lacks what a systemd host has;
   * stricter: nspawn refuses on purpose what systemd-nspawn lets through with --register=no --keep-unit
   */
  status: 'no-seccomp' | 'host' | 'stricter';
  reason: string;
}

const ALL_DIFFERENCES: Difference[] = [
  {
    attempts: ['init-module', 'finit-module'],
    systemd: 'EPERM',
    nspawn: kernel.modules ? 'EPERM' : 'ENOSYS',
    status: 'no-seccomp',
    reason: 'seccomp refuses @module without CAP_SYS_MODULE; without a filter the kernel answers (no CAP_SYS_MODULE: EPERM; no module support: ENOSYS)',
  },
  {
    attempts: ['kexec-load'],
    systemd: 'EPERM',
    nspawn: kernel.kexec ? 'EINVAL' : 'ENOSYS',
    status: 'no-seccomp',
    reason: 'seccomp refuses kexec_load; without a filter CAP_SYS_BOOT lets it through to the argument check (EINVAL), or the kernel has no kexec (ENOSYS)',
  },
  {
    attempts: ['swapon'],
    systemd: 'EPERM',
    nspawn: kernel.swap ? 'ENOENT' : 'ENOSYS',
    status: 'no-seccomp',
    reason: 'seccomp refuses @swap; without a filter CAP_SYS_ADMIN lets swapon() through to the path lookup',
  },
  {
    attempts: ['open-by-handle-at'],
    systemd: 'EPERM',
    nspawn: 'ok',
    status: 'no-seccomp',
    reason: 'seccomp refuses open_by_handle_at; without a filter CAP_DAC_READ_SEARCH opens the host file system by a forged handle (the "shocker" escape)',
  },
  {
    attempts: ['keyctl-search-session', 'request-key-canary'],
    systemd: 'EPERM',
    nspawn: 'ENOKEY',
    status: 'no-seccomp',
    reason: 'seccomp refuses @keyring; without a filter the container searches its own new session keyring (setup_keyring()) and finds no host key',
  },
  {
    attempts: ['keyctl-read-user-keyring', 'keyctl-describe-host-session', 'keyctl-read-host-session'],
    systemd: 'EPERM',
    nspawn: 'ok',
    status: 'no-seccomp',
    reason: 'seccomp refuses @keyring; without a filter root in the container is root of the host keyrings: it can list root\'s user keyring and view the host session keyring by its serial',
  },
  {
    attempts: ['keyctl-read-host-key'],
    systemd: 'EPERM',
    nspawn: 'EACCES',
    status: 'no-seccomp',
    reason: 'seccomp refuses @keyring; without a filter the key\'s permissions refuse reading it to anyone who does not possess it',
  },
  {
    attempts: ['bpf-prog-load', 'perf-event-open'],
    systemd: 'EPERM',
    nspawn: 'ok',
    status: 'no-seccomp',
    reason: 'seccomp refuses bpf and perf_event_open; without a filter CAP_SYS_ADMIN allows them',
  },
  {
    attempts: ['umount-proc-kallsyms'],
    systemd: kernel.inaccessibleNodes ? 'ok' : 'EINVAL',
    nspawn: 'ok',
    status: 'host',
    reason: 'systemd-nspawn masks /proc/kallsyms with /run/systemd/inaccessible/reg, missing without systemd as PID 1, so here there is no mask to unmount (EINVAL); root can unmount the mask under both',
  },
  {
    attempts: ['open-proc-sysrq-trigger'],
    systemd: kernel.sysrq ? (kernel.inaccessibleNodes ? 'EROFS' : 'ok') : 'ENOENT',
    nspawn: kernel.sysrq ? 'EROFS' : 'ENOENT',
    status: 'host',
    reason: 'systemd-nspawn leaves /proc/sysrq-trigger unmasked without /run/systemd/inaccessible/reg; nspawn always masks it with a read-only file',
  },
  {
    attempts: ['mknod-kmsg', 'mknod-loop', 'open-image-node'],
    systemd: 'ok',
    nspawn: 'EPERM',
    status: 'stricter',
    reason:
      "systemd-nspawn 252 gets its device policy (DevicePolicy=closed + /dev/net/tun, ptys, bound nodes) only from the scope machined or systemd makes, which --register=no --keep-unit skip: any host device is in reach with CAP_MKNOD; nspawn's own scope has that policy on every host (v1 devices controller and a cgroup BPF program)",
  },
];
const DIFFERENCES = ALL_DIFFERENCES.filter((d) => d.systemd !== d.nspawn);

/**
 * The differences that apply to a run: the host's and the stricter ones always; the no-seccomp ones only when
 * systemd-nspawn's payload runs with its seccomp filter and nspawn's without one (their "seccomp-mode" lines: 2 and
 * 0). With the same confinement, every attempt must end the same way.
 */
const differencesFor = (systemdSeccomp: boolean, nspawnSeccomp: boolean) =>
  DIFFERENCES.filter((d) => d.status === 'host' || d.status === 'stricter' || (systemdSeccomp && !nspawnSeccomp));

interface Variant {
  name: string;
  args: string[];
  /** added to both tools' environment */
  env?: NodeJS.ProcessEnv;
  /** the OS tree (default: busybox) */
  tree?: 'busybox' | 'debian';
}
const VARIANTS: Variant[] = [
  { name: 'plain', args: [] },
  { name: 'as-pid2', args: ['-a'] },
  { name: 'private-network', args: ['--private-network'] },
  // both without their seccomp filter: what capabilities, mounts and namespaces alone hold back
  { name: 'no-seccomp', args: [], env: { SYSTEMD_SECCOMP: '0' } },
  // a full Debian tree (scripts/make-debian-tree.sh): the same battery where a real distribution is around it
  { name: 'debian', args: [], tree: 'debian' },
];

let base: ReturnType<typeof makeTempDir> | undefined;
let probe = '';
let marker = '';
let sleeper: ChildProcess | undefined;
let fd9 = -1;
let rootDev = '';
let hostBefore: HostState | undefined;
const table = new Map<string, Map<string, string>>(); // "variant tool" -> attempt -> result

let host: EscapeHost | undefined;
const sleeperAlive = () => host!.sleeperAlive();

beforeAll(() => {
  requireRootAndSystemdNspawn();
  host = setUpEscapeHost('nspawn-escape-');
  ({ base, probe, marker, sleeper, fd9, rootDev, before: hostBefore } = host);
});

afterAll(() => {
  const lines: string[] = [];
  for (const [k, m] of table) lines.push(`  ${k}: ${[...m].map(([a, r]) => `${a}=${r}`).join(' ')}`);
  console.log(`escape battery results:\n${lines.join('\n')}`);
  if (!host) return;
  const { alive, dir, left, removed } = host.finish();
  expect(alive, 'the host sleep survived every run').toBe(true);
  expect(left, `mounts left under ${dir}`).toEqual([]);
  expect(removed, `${dir} was not removed`).toBe(true);
});

interface Run {
  status: number | null;
  signal: NodeJS.Signals | null;
  out: string[];
  stderr: string;
  keyring: string[];
}

/**
 * Runs TOOL on a fresh busybox (or Debian) tree with the probe, inside the keyring wrapper, with the host file on fd 9.
 * Asynchronous (execa): the Debian tree's first build takes a minute, and a synchronous wait blocks the vitest worker.
 */
async function runProbe(tool: Tool, variant: Variant, probeArgs: string[]): Promise<Run> {
  if (!base) throw new Error('no temp dir (beforeAll failed)');
  const runDir = join(base.dir, `${variant.name}.${tool}.${probeArgs.join('_').replace(/[^a-z0-9=_-]/gi, '')}`);
  mkdirSync(runDir);
  const tree = join(runDir, 'tree');
  const maker = variant.tree === 'debian' ? 'scripts/make-debian-tree.sh' : 'scripts/make-busybox-tree.sh';
  await execa(join(REPO, maker), [tree], { stdin: 'ignore', stdout: 'ignore', stderr: 'inherit', timeout: 300000 });
  copyFileSync(probe, join(tree, 'escape-probe'));
  chmodSync(join(tree, 'escape-probe'), 0o755);
  // a device node the image brings along: the host's kernel log
  await execa('mknod', [join(tree, 'escape-node'), 'c', '1', '11']);
  const report = join(runDir, 'keyring-report');
  const [cmd, pre] = toolCommand(tool);
  const argv = ['--host-wrap', report, '--', cmd, ...pre, ...COMMON_FLAGS, '-q', '-D', tree, ...variant.args, '/escape-probe', ...probeArgs];
  // stdin empty (as input ''), the host file on fd 9 (execa passes a descriptor number as node does; its types
  // allow one only for fds 0-2)
  const stdio = [new Uint8Array(), 'pipe', 'pipe', 'ignore', 'ignore', 'ignore', 'ignore', 'ignore', 'ignore', fd9 as unknown as 'inherit'] as const;
  const r = await execa(probe, argv, {
    env: { ...TOOL_ENV, ...variant.env },
    extendEnv: false,
    timeout: 30000,
    killSignal: 'SIGKILL',
    stdio,
    reject: false,
    stripFinalNewline: false,
  });
  if (r.failed && r.exitCode === undefined && r.signal === undefined && !r.timedOut) throw new Error(r.message);
  const leftMounts = mountsUnder(runDir);
  expect(leftMounts, `${tool} ${variant.name}: mounts left in the host`).toEqual([]);
  return {
    status: r.exitCode ?? null,
    signal: (r.signal as NodeJS.Signals | undefined) ?? null,
    out: String(r.stdout ?? '').split('\n').map((l) => l.replace(/\r+$/, '')).filter((l) => l !== ''),
    stderr: String(r.stderr ?? '') + (r.timedOut ? '\n[test: killed after 30000 ms]' : ''),
    keyring: existsSync(report) ? readFileSync(report, 'utf8').split('\n').filter((l) => l !== '') : ['(no report)'],
  };
}

function results(run: Run): Map<string, string> {
  const m = new Map<string, string>();
  for (const l of run.out) {
    const x = ESCAPE_RESULT.exec(l);
    if (x) {
      expect(m.has(x[1]!), `attempt ${x[1]} reported twice`).toBe(false);
      m.set(x[1]!, x[2]!);
    }
  }
  return m;
}

/** The probe's seccomp-mode line (-1: none). */
function seccompMode(run: Run): number {
  const l = run.out.find((x) => x.startsWith('seccomp-mode: '));
  return l === undefined ? -1 : Number(l.slice('seccomp-mode: '.length));
}

function expectHostUntouched(run: Run, what: string): void {
  expect(run.keyring.slice(1), `${what}: host keyring`).toEqual([
    'session-still-ours: yes',
    'canary-payload: same',
    'canary-description: same',
    'session-keyring: same',
    'user-keyring: same',
  ]);
  expect(sleeperAlive(), `${what}: the host sleep was killed`).toBe(true);
  const now = hostState();
  expect(now.hostname, `${what}: host name`).toBe(hostBefore!.hostname);
  expect(now.corePattern, `${what}: core_pattern`).toBe(hostBefore!.corePattern);
  expect(now.apiMounts, `${what}: host API mounts`).toEqual(hostBefore!.apiMounts);
}

describe('escape battery: every attempt ends the same way under systemd-nspawn and nspawn', () => {
  for (const v of VARIANTS) {
    it(`${v.name} (${[...Object.entries(v.env ?? {}).map(([k, x]) => `${k}=${x}`), ...v.args].join(' ') || 'no options'})`, async () => {
      const probeArgs = [`host-pid=${sleeper!.pid}`, 'host-session={SESSION}', 'host-key={KEY}', `root-dev=${rootDev}`, `marker=${marker}`, 'image-node=/escape-node'];
      const runs = {} as Record<Tool, { run: Run; res: Map<string, string> }>;
      for (const tool of TOOLS) {
        const run = await runProbe(tool, v, probeArgs);
        expect(run.status, `${tool} ${v.name} exit status; output:\n${run.out.join('\n')}\n${run.stderr}`).toBe(0);
        expect(run.out.at(-1), `${tool} ${v.name}: the probe did not finish`).toBe('end');
        expectHostUntouched(run, `${tool} ${v.name}`);
        const res = results(run);
        expect([...res.keys()], `${tool} ${v.name}: attempts reported`).toEqual([...ATTEMPTS]);
        runs[tool] = { run, res };
        table.set(`${v.name} ${tool}`, new Map([...res, ['seccomp-mode', String(seccompMode(run))]]));
      }
      const systemdSeccomp = seccompMode(runs['systemd-nspawn'].run) === 2;
      expect(systemdSeccomp, 'systemd-nspawn confines the payload with a seccomp filter unless $SYSTEMD_SECCOMP=0').toBe(v.env?.SYSTEMD_SECCOMP !== '0');
      const differences = differencesFor(systemdSeccomp, seccompMode(runs.nspawn.run) === 2);
      const unexplained: string[] = [];
      for (const a of ATTEMPTS) {
        const sd = runs['systemd-nspawn'].res.get(a);
        const ns = runs.nspawn.res.get(a);
        const d = differences.find((x) => x.attempts.includes(a));
        if (d) {
          if (sd !== d.systemd || ns !== d.nspawn)
            unexplained.push(`${a}: systemd-nspawn ${sd}, nspawn ${ns}; DIFFERENCES expects systemd-nspawn ${d.systemd}, nspawn ${d.nspawn} (${d.status}) — update the entry if this was fixed`);
        } else if (sd !== ns) unexplained.push(`${a}: systemd-nspawn ${sd}, nspawn ${ns}`);
      }
      expect(unexplained, `${v.name}: attempts that end differently`).toEqual([]);
      // what a succeeded forged handle reaches: the host's own file system (the marker outside the tree)
      const shocker = runs.nspawn.run.out.some((l) => l.includes('host marker') && l.includes('is visible'));
      expect(shocker, 'nspawn: a forged handle reaches the host file system').toBe(runs.nspawn.res.get('open-by-handle-at') === 'ok');
    }, v.tree === 'debian' ? 300000 : undefined); // the first Debian tree on a machine is a debootstrap (~1 min)
  }

  it('the differences are data: each has attempts, a reason and a status', () => {
    for (const d of DIFFERENCES) {
      expect(d.attempts.length).toBeGreaterThan(0);
      for (const a of d.attempts) expect(ATTEMPTS).toContain(a);
      expect(d.reason.includes('\n')).toBe(false);
    }
    console.log(`escape battery differences on this host:\n${DIFFERENCES.map((d) => `  [${d.status}] ${d.attempts.join(', ')}: systemd-nspawn ${d.systemd}, nspawn ${d.nspawn}: ${d.reason}`).join('\n')}`);
  });
});

describe('reboot(RB_AUTOBOOT) ends only the container', () => {
  for (const v of VARIANTS.filter((x) => x.name === 'plain' || x.name === 'as-pid2')) {
    it(`${v.name}: both exit 133 (reboot with --keep-unit), the host untouched`, async () => {
      for (const tool of TOOLS) {
        const run = await runProbe(tool, v, ['only=reboot']);
        expect(run.out, `${tool} ${v.name}: probe output (status ${run.status}, signal ${run.signal}, stderr: ${run.stderr})`).toContain('reboot: trying');
        expect(run.out.filter((l) => l.startsWith('reboot: E') || l === 'reboot: ok' || l === 'end'), `${tool} ${v.name}: reboot() returned`).toEqual([]);
        expect({ status: run.status, signal: run.signal }, `${tool} ${v.name}: how the run ended\n${run.stderr}`).toEqual({ status: 133, signal: null });
        expectHostUntouched(run, `${tool} ${v.name} reboot`);
      }
    });
  }
});
