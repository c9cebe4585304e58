/**
 * A systemd host for the tests (issue 18): a Debian 12 tree with systemd as PID 1, dbus, machined, machinectl,
 * systemd-nspawn 252, nss-mymachines and a busybox tree at /var/lib/machines/inner (scripts/make-systemd-host.sh,
 * built once and cached), booted under systemd-nspawn with the checkout and /usr/local (Node) bound read-only, so
 * that tests run our code inside a real systemd host on a machine that has none.
 *
 *   const host = await bootSystemdHost({ name: 'mh-host' });
 *   try { await host.run(['machinectl', 'list']); } finally { await host.shutdown(); }
 *
 * It kills only the systemd-nspawn process it started (by PID), removes only the copy and the cgroups it made.
 */
// execa runs the one-shot commands (the tree's build, which takes minutes the first time, exec(), the copy's
// removal) asynchronously: a synchronous spawn would block the vitest worker's event loop ("Timeout calling
// onTaskUpdate"). The two long-lived children (systemd-nspawn, spawn()) stay node:child_process processes, because
// spawn() hands its ChildProcess to the caller.
import { spawn, type ChildProcess } from 'node:child_process';
import { execa } from 'execa';
import { keepUnitHierarchies, removeCgroupTree } from '@nspawn/test-kit';
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, closeSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository this helper lives in (bound read-only into the host at the same path). */
export const REPO = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
/** The build script of the tree (cached in /var/cache/nspawn-test/systemd-host-bookworm). */
export const MAKE_SYSTEMD_HOST = join(REPO, 'scripts/make-systemd-host.sh');
/** The Debian 12 tree's build script (debootstrap with systemd and dbus, cached in /var/cache/nspawn-test/debian-bookworm). */
export const MAKE_DEBIAN_TREE = join(REPO, 'scripts/make-debian-tree.sh');
/** Node inside the host: the host's /usr/local is bound in. */
export const HOST_NODE = '/usr/local/bin/node';
/** The busybox tree inside the host, for containers of the tests. */
export const INNER_TREE = '/var/lib/machines/inner';

const PATH_ENV = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface BootOptions {
  /** the host's machine name (-M) and hostname; default `mh-host-XXXXXX` */
  name?: string;
  /** where its copy goes (a new directory NAME.XXXX below it); default /var/tmp */
  parentDir?: string;
  /** read-only binds besides the checkout and /usr/local, host path = path inside */
  bindRo?: string[];
  /** the checkout bound in (default: this repository) */
  checkout?: string;
  /** boot deadline; default 120 s */
  timeoutMs?: number;
  /** progress lines (default: none) */
  log?: (line: string) => void;
}

export interface ExecOptions {
  /** stdin (default: none, /dev/null) */
  input?: string;
  /** default 60 s; the process is killed (SIGKILL, by PID) after it */
  timeoutMs?: number;
  /**
   * run it in a transient scope of the host's systemd (`systemd-run --scope`), as a process started on that host
   * would be; without it the process stays in the test's own cgroup (nsenter does not move it)
   */
  scope?: boolean;
  env?: Record<string, string>;
}

export interface ExecResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface SystemdHost {
  readonly name: string;
  /** the host's root directory (a copy of the cached tree) */
  readonly dir: string;
  /** the systemd-nspawn process that runs it */
  readonly nspawnPid: number;
  /** the host's PID 1 (systemd), as this machine sees it */
  readonly leader: number;
  /** milliseconds: copying the tree, then booting until `systemctl is-system-running` said running/degraded */
  readonly timings: { copyMs: number; bootMs: number };
  /** runs ARGV inside the host (all its namespaces: `nsenter -t LEADER -a`) and waits for it */
  exec(argv: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** exec(), but throws (with stderr) unless it exits 0; resolves to stdout */
  run(argv: string[], opts?: ExecOptions): Promise<string>;
  /** starts ARGV inside the host and leaves it running; it dies with the host at the latest */
  spawn(argv: string[], opts?: Omit<ExecOptions, 'timeoutMs' | 'input'>): ChildProcess;
  /** powers the host off (SIGTERM to systemd-nspawn, then SIGKILL), removes its cgroups and its copy; idempotent */
  shutdown(): Promise<void>;
}

/** Throws (never skips) where the fixture cannot work. */
export function requireSystemdHostTools(): void {
  if (process.getuid?.() !== 0) throw new Error('the systemd host fixture needs root (systemd-nspawn, nsenter, cgroups)');
  for (const tool of ['/usr/bin/systemd-nspawn', '/usr/bin/nsenter', '/usr/bin/setpriv'])
    if (!existsSync(tool)) throw new Error(`${tool} is missing (apt-get install systemd-container util-linux)`);
}

/**
 * A fresh copy of the systemd host tree at DIR (which must not exist), built and cached on first use (minutes:
 * asynchronous, so the test worker stays responsive). The caches are `$NSPAWN_SYSTEMD_HOST_CACHE` and
 * `$NSPAWN_DEBIAN_CACHE` (scripts/make-systemd-host.sh, scripts/make-debian-tree.sh).
 */
export async function makeSystemdHostTree(dir: string): Promise<void> {
  await execa('bash', [MAKE_SYSTEMD_HOST, dir], {
    stdin: 'ignore',
    stdout: 'ignore',
    stderr: 'inherit',
    timeout: 20 * 60_000,
    killSignal: 'SIGKILL',
  });
}

/**
 * A bootable Debian 12 tree (systemd, dbus: scripts/make-debian-tree.sh's cached debootstrap, the tree the host is
 * built from) at /var/lib/machines/NAME inside HOST, for containers that boot (`-b`) where the busybox tree's init
 * will not do (the journal, units). A copy of the cache made from outside into the host's root (no reflink on ext4:
 * about 0.6 s, 241 MB), removed with the host. MACHINEID (32 hex digits) is written to its /etc/machine-id; without it
 * the file stays empty, as debootstrap left it (systemd-nspawn then picks a random UUID, which PID 1 commits).
 * Resolves to the path inside the host.
 */
export async function addDebianTree(host: Pick<SystemdHost, 'dir'>, name: string, opts: { machineId?: string } = {}): Promise<string> {
  if (!/^[a-zA-Z0-9][a-zA-Z0-9-]{0,60}$/.test(name)) throw new Error(`bad tree name ${JSON.stringify(name)}`);
  if (opts.machineId !== undefined && !/^[0-9a-f]{32}$/.test(opts.machineId)) throw new Error(`bad machine ID ${JSON.stringify(opts.machineId)}`);
  const inside = `/var/lib/machines/${name}`;
  const dir = join(host.dir, inside);
  await execa('bash', [MAKE_DEBIAN_TREE, dir], { stdin: 'ignore', stdout: 'ignore', stderr: 'inherit', timeout: 20 * 60_000, killSignal: 'SIGKILL' });
  if (opts.machineId !== undefined) writeFileSync(join(dir, 'etc/machine-id'), `${opts.machineId}\n`);
  return inside;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const alive = (pid: number) => existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(safeRead(`/proc/${pid}/status`));
function safeRead(p: string): string {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return '';
  }
}

/** The child of PID whose innermost PID is 1: the container's init (systemd-nspawn's inner child). */
function findLeader(nspawnPid: number): number | undefined {
  for (const task of safeReadDir(`/proc/${nspawnPid}/task`)) {
    for (const c of safeRead(`/proc/${nspawnPid}/task/${task}/children`).split(/\s+/).filter(Boolean)) {
      const m = /^NSpid:\s+(.*)$/m.exec(safeRead(`/proc/${c}/status`));
      if (m && m[1]!.trim().split(/\s+/).at(-1) === '1') return Number(c);
    }
  }
  return undefined;
}
function safeReadDir(p: string): string[] {
  try {
    return readdirSync(p);
  } catch {
    return [];
  }
}

/** Runs ARGV to its end (SIGKILL after TIMEOUTMS), exactly ENV, stdin INPUT (none: /dev/null). */
async function collect(argv: string[], env: Record<string, string>, input: string | undefined, timeoutMs: number): Promise<ExecResult> {
  const r = await execa(argv[0]!, argv.slice(1), {
    env,
    extendEnv: false,
    ...(input === undefined ? { stdin: 'ignore' as const } : { input }),
    timeout: timeoutMs,
    killSignal: 'SIGKILL',
    reject: false,
    stripFinalNewline: false,
  });
  // not started at all (ENOENT, EACCES): an error, as before; an exit code or a signal is a result
  if (r.failed && r.exitCode === undefined && r.signal === undefined && !r.timedOut) throw new Error(r.message);
  let stderr = String(r.stderr ?? '');
  if (r.timedOut) stderr += `\n[systemd-host: killed after ${timeoutMs} ms]`;
  return { code: r.exitCode ?? null, signal: (r.signal as NodeJS.Signals | undefined) ?? null, stdout: String(r.stdout ?? ''), stderr };
}

/** Copies the cached tree, boots it and waits until its systemd has started up. */
export async function bootSystemdHost(opts: BootOptions = {}): Promise<SystemdHost> {
  requireSystemdHostTools();
  const log = opts.log ?? (() => {});
  const name = opts.name ?? `mh-host-${randomBytes(3).toString('hex')}`;
  if (!/^[a-zA-Z0-9][a-zA-Z0-9-]{0,40}$/.test(name)) throw new Error(`bad host name ${JSON.stringify(name)}`);
  const parent = opts.parentDir ?? '/var/tmp';
  const dir = join(parent, `${name}.${randomBytes(4).toString('hex')}`);
  const checkout = opts.checkout ?? REPO;
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const cgroups = keepUnitHierarchies().map((root) => join(root, name));
  const children = new Set<ChildProcess>();
  let nspawn: ChildProcess | undefined;
  let leader = 0;
  let down: Promise<void> | undefined;

  const shutdown = () =>
    (down ??= (async () => {
      for (const c of children) if (c.exitCode === null && c.signalCode === null && c.pid) process.kill(c.pid, 'SIGKILL');
      const pid = nspawn?.pid;
      if (pid && nspawn!.exitCode === null && nspawn!.signalCode === null) {
        // SIGTERM: systemd-nspawn sends its kill signal (SIGRTMIN+3 with -b): systemd halts, the container ends
        process.kill(pid, 'SIGTERM');
        const until = Date.now() + 20_000;
        while (alive(pid) && Date.now() < until) await sleep(50);
        if (alive(pid)) {
          log(`systemd host ${name}: not halted after 20 s (a unit waiting for its stop timeout?): SIGKILL`);
          process.kill(pid, 'SIGKILL');
        }
      }
      // reaped (no zombie left)
      if (nspawn && nspawn.exitCode === null && nspawn.signalCode === null) await new Promise((r) => nspawn!.once('exit', r));
      // the host's PID 1 dies with systemd-nspawn (its parent-death signal); its whole PID namespace with it
      let until = Date.now() + 5_000;
      while (leader && alive(leader) && Date.now() < until) await sleep(50);
      // systemd-nspawn killed: its container's PID 1 (started by it for us) goes too, and its PID namespace with it
      if (leader && alive(leader)) process.kill(leader, 'SIGKILL');
      until = Date.now() + 10_000;
      while (leader && alive(leader) && Date.now() < until) await sleep(50);
      if (leader && alive(leader)) throw new Error(`systemd host ${name}: PID 1 (${leader}) is still alive`);
      for (let i = 0; ; i++) {
        try {
          for (const cg of cgroups) removeCgroupTree(cg);
          break;
        } catch (e) {
          if (i >= 100) throw e; // processes of the host may take a moment to leave their cgroups
          await sleep(50);
        }
      }
      const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
      const mounted = readFileSync('/proc/self/mountinfo', 'utf8')
        .split('\n')
        .map((l) => unescape(l.split(' ')[4] ?? ''))
        .filter((mp) => mp === dir || mp.startsWith(`${dir}/`));
      if (mounted.length) throw new Error(`systemd host ${name}: ${mounted.join(', ')} still mounted; not removing ${dir}`);
      if (existsSync(dir) && lstatSync(dir).isDirectory()) await execa('rm', ['-rf', '--one-file-system', '--', dir]);
      // systemd-nspawn's propagation directory for this machine, which it cannot remove where /run is no tmpfs
      const propagate = `/run/systemd/nspawn/propagate/${name}`;
      if (existsSync(propagate)) rmSync(propagate, { recursive: true, force: true });
      rmSync(join(parent, `${name}.log`), { force: true });
    })());

  try {
    let t0 = performance.now();
    await makeSystemdHostTree(dir);
    const copyMs = performance.now() - t0;
    log(`systemd host ${name}: tree at ${dir} (${copyMs.toFixed(0)} ms)`);
    for (const cg of cgroups) mkdirSync(cg);
    const binds = [checkout, '/usr/local', ...(opts.bindRo ?? [])].map((p) => `--bind-ro=${p}`);
    const logFd = openSync(join(parent, `${name}.log`), 'w');
    t0 = performance.now();
    // its own cgroup (not the test's: two hosts in one cgroup would share systemd-nspawn's payload/ below it), and
    // a parent-death signal, so that a killed test run does not leave a booted host behind
    const enter = cgroups.map((cg) => `echo $$ > '${cg}/cgroup.procs'`).join('; ');
    nspawn = spawn(
      '/usr/bin/setpriv',
      [
        '--pdeathsig', 'TERM', '--',
        '/bin/sh', '-c', `${enter}; exec "$@"`, 'sh',
        '/usr/bin/systemd-nspawn', '--register=no', '--keep-unit', '-b', '--private-network', '-D', dir, ...binds,
        '--console=passive', '-M', name,
      ],
      { stdio: ['ignore', logFd, logFd], env: { PATH: PATH_ENV, SYSTEMD_LOG_COLOR: '0' } },
    );
    closeSync(logFd);
    const nspawnPid = nspawn.pid!;
    const bootLog = () => safeRead(join(parent, `${name}.log`)).split('\n').slice(-15).join('\n');
    const deadline = Date.now() + timeoutMs;
    while (!(leader = findLeader(nspawnPid) ?? 0)) {
      if (!alive(nspawnPid)) throw new Error(`systemd host ${name}: systemd-nspawn exited:\n${bootLog()}`);
      if (Date.now() > deadline) throw new Error(`systemd host ${name}: no PID 1 after ${timeoutMs} ms`);
      await sleep(20);
    }
    let state = '';
    for (;;) {
      const r = await collect(
        ['/usr/bin/nsenter', '-t', String(leader), '-a', '--', 'systemctl', 'is-system-running'],
        { PATH: PATH_ENV },
        undefined,
        10_000,
      );
      state = r.stdout.trim();
      if (state === 'running' || state === 'degraded') break;
      if (!alive(nspawnPid)) throw new Error(`systemd host ${name}: systemd-nspawn exited during boot:\n${bootLog()}`);
      if (Date.now() > deadline) throw new Error(`systemd host ${name}: still '${state}' after ${timeoutMs} ms:\n${bootLog()}`);
      await sleep(50);
    }
    const bootMs = performance.now() - t0;
    log(`systemd host ${name}: ${state} after ${bootMs.toFixed(0)} ms (PID 1 is ${leader})`);

    const argvFor = (argv: string[], o: { scope?: boolean } | undefined) => [
      '-t', String(leader), '-a', '--',
      ...(o?.scope ? ['systemd-run', '--scope', '--quiet', '--collect', '--'] : []),
      ...argv,
    ];
    const envFor = (o: { env?: Record<string, string> } | undefined) => ({ PATH: PATH_ENV, LANG: 'C.UTF-8', ...o?.env });
    const host: SystemdHost = {
      name,
      dir,
      nspawnPid,
      leader,
      timings: { copyMs, bootMs },
      exec: (argv, o) => collect(['/usr/bin/nsenter', ...argvFor(argv, o)], envFor(o), o?.input, o?.timeoutMs ?? 60_000),
      async run(argv, o) {
        const r = await host.exec(argv, o);
        if (r.code !== 0) throw new Error(`in ${name}: ${argv.join(' ')}: exit ${r.code ?? r.signal}\n${r.stderr}${r.stdout}`);
        return r.stdout;
      },
      spawn(argv, o) {
        const c = spawn('/usr/bin/nsenter', argvFor(argv, o), { env: envFor(o), stdio: ['ignore', 'pipe', 'pipe'] });
        children.add(c);
        return c;
      },
      shutdown,
    };
    return host;
  } catch (e) {
    await shutdown().catch((e2: unknown) => log(`systemd host ${name}: cleanup failed: ${(e2 as Error).message}`));
    throw e;
  }
}
