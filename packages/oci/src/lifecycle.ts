/**
 * The container lifecycle of the OCI runtime command line on the engine (@nspawn/runtime runPlan()):
 *
 * - create: a detached monitor process (the caller's own command, re-run) holds the helper. The helper clones the
 *   container and waits at its sync point; the monitor records the state, runs the create hooks and listens on
 *   ROOT/ID/start.sock; then it tells create the PID (a pipe on fd 3) and create exits.
 * - start: connects to start.sock; the monitor lets the helper go, removes the socket, answers; start runs the
 *   poststart hooks.
 * - state/kill/delete/list read the record; the status is computed (stopped when the process is gone).
 */
import { openSync, writeSync, closeSync, unlinkSync, fstatSync, existsSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { join, resolve } from 'node:path';
import { type ChildProcess, spawn } from 'node:child_process';
import { type ContainerEnd, type HelperPlan, runPlan } from '@nspawn/runtime';
import { runHooks } from './hooks.js';
import { HOOK_NAMES, loadSpec, type HookName, type Spec, SpecError } from './spec.js';
import {
  alive, checkId, containerDir, listIds, loadRecord, makeContainerDir, ociState, type OciState, procStat, type Record_,
  removeContainerDir, saveRecord, socketAddress, startSocket, StateError, statusOf, writeAtomic,
} from './state.js';
import { resolveRootfs, translateSpec, useCgroupViews } from './translate.js';
import { makeCgroups, removeCgroups } from './cgroups.js';
import { containerPids } from './control.js';


export interface CreateOptions {
  root: string;
  id: string;
  bundle: string;
  pidFile?: string;
  /** --console-socket: an AF_UNIX socket the terminal's master is sent to (process.terminal) */
  consoleSocket?: string;
  /** --preserve-fds: our descriptors 3.. (after LISTEN_FDS's) that the container's process gets */
  preserveFds?: number;
  /** --no-new-keyring */
  noNewKeyring?: boolean;
  /** log lines (errors, warnings of the helper) */
  log: (level: 'error' | 'warning' | 'info', msg: string) => void;
}

/**
 * What the app runs as the monitor: its own command with the monitor verb and these options (JSON). The monitor
 * gets a pipe on fd 3 (its report to create) and FDS descriptors from 4 on (LISTEN_FDS's, then --preserve-fds').
 */
export type MonitorCommand = (opts: MonitorArgs) => { file: string; args: string[] };
export interface MonitorArgs {
  root: string;
  id: string;
  bundle: string;
  consoleSocket?: string;
  /** descriptors the monitor got from 4 on, for the container's process (3, 4, ...) */
  fds?: number;
  /** how many of them are LISTEN_FDS's (the process gets LISTEN_FDS=N and LISTEN_PID=1) */
  listenFds?: number;
  noNewKeyring?: boolean;
}

/** How many descriptors systemd-style socket activation gave this process (LISTEN_PID ours), as runc's activation.Files(). */
export function listenFdsOf(env: NodeJS.ProcessEnv, pid: number): number {
  if (!env.LISTEN_FDS || Number(env.LISTEN_PID) !== pid) return 0;
  const n = Number(env.LISTEN_FDS);
  return Number.isInteger(n) && n > 0 ? n : 0;
}

/** runc's checks of --preserve-fds: each of the N descriptors after BASE must be open. */
export function checkPreserved(base: number, n: number): void {
  for (let i = 0; i < n; i++) {
    try {
      fstatSync(base + i);
    } catch (e) {
      throw new StateError(`unable to stat preserved-fd ${i} (of ${n}): ${(e as Error).message}`);
    }
  }
}

function prepare(opts: { root: string; id: string; bundle: string; consoleSocket?: string; foreground?: boolean }): { spec: Spec; plan: (sync: boolean) => HelperPlan; bundle: string; rootfs: string } {
  checkId(opts.id);
  const bundle = resolve(opts.bundle);
  const spec = loadSpec(join(bundle, 'config.json'));
  const rootfs = resolveRootfs(bundle, spec.root.path);
  const terminal = spec.process?.terminal === true;
  // runc's words (utils_linux.go validateProcessSpec, runner.run)
  if (terminal && !opts.consoleSocket && !opts.foreground) throw new SpecError('cannot allocate tty if runc will detach without setting console socket');
  if (!terminal && opts.consoleSocket) throw new SpecError('cannot use console socket if runc will not detach or allocate tty');
  if (spec.process?.apparmorProfile) throw new SpecError('process.apparmorProfile: apparmor is not enabled on this system');
  // a terminal: the helper makes it in the container's devpts; its master goes to the console socket, or (run in
  // the foreground) the helper forwards it to ours
  const console = !terminal ? 'pipe' : opts.consoleSocket ? 'passive' : 'interactive';
  // the plan is made now so that a config the engine cannot express fails before anything exists (once: the
  // monitor runs this one)
  const first = translateSpec(spec, { rootfs, sync: true, console });
  let used = false;
  return {
    spec,
    bundle,
    rootfs,
    plan: (sync) => {
      if (sync && !used) {
        used = true;
        return first;
      }
      return translateSpec(spec, { rootfs, sync, console });
    },
  };
}

/** Connects to the --console-socket (the caller listens on it: conmon, containerd's shim). */
function connectConsole(path: string): Promise<Socket> {
  return new Promise((res, rej) => {
    const c = createConnection(path);
    c.once('connect', () => res(c));
    c.once('error', (e) => rej(new StateError(`--console-socket ${path}: ${e.message}`)));
  });
}

/** `create`: returns the container's PID once it waits for start. */
export async function createContainer(opts: CreateOptions, monitor: MonitorCommand): Promise<number> {
  const consoleSocket = opts.consoleSocket ? resolve(opts.consoleSocket) : undefined;
  const { bundle, spec } = prepare({ ...opts, ...(consoleSocket ? { consoleSocket } : {}) });
  const listenFds = listenFdsOf(process.env, process.pid);
  const fds = listenFds + (opts.preserveFds ?? 0);
  checkPreserved(3 + listenFds, opts.preserveFds ?? 0);
  makeContainerDir(opts.root, opts.id);
  const cmd = monitor({ root: opts.root, id: opts.id, bundle, ...(consoleSocket ? { consoleSocket } : {}), ...(fds ? { fds, listenFds } : {}), ...(opts.noNewKeyring ? { noNewKeyring: true } : {}) });
  let child: ChildProcess;
  try {
    const passed = Array.from({ length: fds }, (_, i) => 3 + i);
    // without a terminal the container's stdio is create's; with one it is the pty, and nothing of ours may keep
    // create's stdio open (containerd's shim reads create's output to its end before it takes the console's master;
    // runc's init has none of it either)
    const std = spec.process?.terminal ? 'ignore' : 'inherit';
    child = spawn(cmd.file, cmd.args, { detached: true, stdio: [std, std, std, 'pipe', ...passed] });
  } catch (e) {
    removeContainerDir(opts.root, opts.id);
    throw e;
  }
  const report = await new Promise<string>((res) => {
    let buf = '';
    const s = child.stdio[3] as import('node:net').Socket;
    s.setEncoding('utf8');
    s.on('data', (d: string) => (buf += d));
    s.on('error', () => {});
    s.on('close', () => res(buf));
    child.on('error', (e) => res(`error ${e.message}\n`));
  });
  const line = report.split('\n')[0] ?? '';
  if (!line.startsWith('created ')) {
    // the monitor has ended or is ending: nothing of the container is left but the directory
    await new Promise<void>((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', () => r())));
    removeContainerDir(opts.root, opts.id);
    throw new StateError(line.startsWith('error ') ? line.slice(6) : `the monitor of ${opts.id} ended without a word`);
  }
  child.unref();
  const pid = Number(line.slice(8));
  if (opts.pidFile) writeAtomic(resolve(opts.pidFile), `${pid}`);
  return pid;
}

/**
 * The monitor (a process of its own, detached): runs the helper with the plan to the container's end. With
 * foreground (run without --detach) it starts at once and resolves the container's end.
 */
export async function monitorContainer(
  opts: {
    root: string;
    id: string;
    bundle: string;
    log: CreateOptions['log'];
    foreground?: boolean;
    pidFile?: string;
    consoleSocket?: string;
    /** our descriptors the container's process gets as 3, 4, ... (they are closed here once the helper has them) */
    fds?: number[];
    /** how many of FDS are socket activation's (LISTEN_FDS=N, LISTEN_PID=1 in its environment) */
    listenFds?: number;
    /** --no-new-keyring: the container stays in the caller's session keyring */
    noNewKeyring?: boolean;
    /**
     * a helper the caller started (the warm monitor, monitor-server.ts): its control socket, its PID (the record's
     * monitor: delete waits for it), its cgroup's owner, and what it got from 4 on (FDS descriptors, then the
     * console socket's connection when there is one); nothing is spawned or connected here then
     */
    remote?: { child: ChildProcess; pid: number; fds: number; console: boolean };
  },
  reportTo?: number | ((line: string) => void),
): Promise<ContainerEnd> {
  const report = (s: string) => {
    if (reportTo === undefined) return;
    if (typeof reportTo === 'function') reportTo(s);
    else
      try {
        writeSync(reportTo, `${s}\n`);
        closeSync(reportTo);
      } catch {
        // create has gone
      }
    reportTo = undefined;
  };
  const remote = opts.remote;
  let prep;
  try {
    prep = prepare(opts);
  } catch (e) {
    report(`error ${(e as Error).message}`);
    return { kind: 'failed', message: (e as Error).message };
  }
  const { spec, bundle, rootfs } = prep;
  const plan = prep.plan(true);
  // the container waits for start set up (its console sent), as runc's does at its exec fifo
  plan.lateSync = true;
  // a session keyring of its own (runc's default; --no-new-keyring keeps the caller's)
  if (!opts.noNewKeyring) plan.sessionKeyring = true;
  // created for a caller that waits for it (conmon, containerd's shim: subreapers): the helper leaves it to them
  // once it runs, as runc's create does
  if (!opts.foreground) plan.leaveAfterStart = true;
  // the helper's parent is create's front end, which ends after "created": its monitor is at the other end of its
  // control socket (the helper ends when that closes)
  if (remote) plan.survive = true;
  const fds = opts.fds ?? [];
  if (opts.listenFds) plan.env = [...plan.env, `LISTEN_FDS=${opts.listenFds}`, 'LISTEN_PID=1'];
  let consoleSock: Socket | undefined;
  const closePassed = () => {
    // run in the foreground: they are the runtime's own (which may be Node's, when the caller named more than it
    // passed), and it ends with the container
    if (opts.foreground) fds.length = 0;
    for (const fd of fds) {
      try {
        closeSync(fd);
      } catch {
        // closed already
      }
    }
    fds.length = 0;
    consoleSock?.destroy();
  };
  if (opts.consoleSocket && !remote) {
    try {
      consoleSock = await connectConsole(opts.consoleSocket);
    } catch (e) {
      closePassed();
      report(`error ${(e as Error).message}`);
      return { kind: 'failed', message: (e as Error).message };
    }
  }
  const extraFds = [...fds, ...(consoleSock ? [consoleSock] : [])];
  const passed = remote ? remote.fds : fds.length;
  const consoleAt = remote ? remote.console : consoleSock !== undefined;
  if (passed || consoleAt) plan.ociFds = { pass: Array.from({ length: passed }, (_, i) => 4 + i), ...(consoleAt ? { consoleSocket: 4 + passed } : {}) };
  let cgroups;
  try {
    cgroups = makeCgroups(opts.id, spec.linux?.cgroupsPath, spec.linux?.resources as Parameters<typeof makeCgroups>[2], spec.linux?.devices ?? [], remote?.pid);
  } catch (e) {
    closePassed();
    report(`error ${(e as Error).message}`);
    return { kind: 'failed', message: (e as Error).message };
  }
  plan.cgroup = cgroups.plan;
  useCgroupViews(plan, cgroups.views);
  if (cgroups.deviceProgram) plan.deviceProgram = cgroups.deviceProgram;
  let server: Server | undefined;
  const sock = startSocket(opts.root, opts.id);
  const record: Record_ = {
    ociVersion: spec.ociVersion, id: opts.id, pid: 0, startTime: '', bundle, rootfs, created: new Date().toISOString(), monitor: remote?.pid ?? process.pid,
  };
  if (spec.annotations) record.annotations = spec.annotations;
  record.cgroups = cgroups.made;
  record.hooks = HOOK_NAMES.filter((k) => (spec.hooks?.[k]?.length ?? 0) > 0);
  // `start` is answered once the payload has been executed (the helper's "ready": its sync socket closed with the
  // exec), or once the helper has ended without it (a failed exec: its error is the container's end), as runc's
  // start returns once its init has been let go past the exec fifo: a signal sent right after start reaches the
  // payload, not a process that is still becoming it
  let executed: () => void = () => {};
  const execution = new Promise<void>((res) => (executed = res));
  const stateNow = (status: string): OciState => ({ ociVersion: spec.ociVersion, id: opts.id, status: status as OciState['status'], pid: record.pid, bundle, ...(spec.annotations ? { annotations: spec.annotations } : {}) });
  const ending = runPlan(plan, {
    killSignal: 0,
    ...(remote ? { child: remote.child } : extraFds.length ? { extraFds } : {}),
    hooks: { log: (l) => opts.log('warning', l), forwardSignals: !!opts.foreground, onReady: () => executed() },
    attach: async (pid) => {
      record.pid = pid;
      record.startTime = procStat(pid)?.startTime ?? '';
      // the state is recorded before the hooks run: they may ask for it
      if (!opts.foreground) {
        server = createServer();
        await new Promise<void>((res, rej) => {
          server!.once('error', rej);
          server!.listen(socketAddress(sock), () => res());
        });
      }
      saveRecord(opts.root, record);
      await runHooks('prestart', spec.hooks?.prestart, stateNow('created'));
      await runHooks('createRuntime', spec.hooks?.createRuntime, stateNow('created'));
      await runHooks('createContainer', spec.hooks?.createContainer, stateNow('created'));
      if (opts.foreground) {
        if (opts.pidFile) writeAtomic(resolve(opts.pidFile), `${pid}`);
        return;
      }
      report(`created ${pid}`);
      // wait for `start` (or `delete` of the created container: abort)
      const word = await new Promise<string>((res) => {
        // a created container killed meanwhile (kill, delete --force): the helper would wait for its go forever
        const watch = setInterval(() => {
          if (alive(record)) return;
          clearInterval(watch);
          server!.close();
          res('killed');
        }, 100);
        server!.on('connection', (c) => {
          let got = '';
          c.setEncoding('utf8');
          c.on('error', () => {});
          c.on('data', (d: string) => {
            got += d;
            if (!got.includes('\n')) return;
            const w = got.split('\n')[0]!;
            clearInterval(watch);
            server!.close();
            try {
              unlinkSync(sock);
            } catch {
              // gone already
            }
            if (w === 'start') void execution.then(() => c.end('ok\n'));
            else c.end('ok\n');
            res(w);
          });
        });
      });
      if (word !== 'start') throw new Error(`container ${opts.id} deleted before its start`);
      await runHooks('startContainer', spec.hooks?.startContainer, stateNow('running'));
    },
  });
  // the helper has its copies (runPlan() spawned it): ours would keep pipes and sockets open for the container's life
  closePassed();
  const end = await ending;
  executed();
  if (server?.listening) server.close();
  try {
    unlinkSync(sock);
  } catch {
    // not there
  }
  // told to create when it still waits (it says it), else logged: once either way
  if (end.kind === 'failed') {
    if (reportTo !== undefined) report(`error ${end.message}`);
    else opts.log('error', end.message);
  }
  // a failed start leaves nothing behind; run (foreground) is its own delete
  if (end.kind === 'failed' || opts.foreground) removeCgroups(cgroups.made);
  if (opts.foreground && end.kind !== 'failed') {
    // poststart ran with the start; poststop with the delete (here: now)
  }
  return end;
}

/** `start`: lets a created container run, then runs the poststart hooks. */
export async function startContainer(root: string, id: string): Promise<void> {
  const r = loadRecord(root, id);
  const status = statusOf(root, r);
  if (status !== 'created') throw new StateError(`cannot start a container that has ${status === 'stopped' ? 'stopped' : `already been started (${status})`}`);
  await new Promise<void>((res, rej) => {
    const c = createConnection(socketAddress(startSocket(root, id)), () => c.write('start\n'));
    let got = '';
    c.setEncoding('utf8');
    c.on('data', (d: string) => (got += d));
    c.on('error', (e) => rej(new StateError(`cannot start container ${id}: ${e.message}`)));
    c.on('close', () => (got.startsWith('ok') ? res() : rej(new StateError(`cannot start container ${id}: its monitor did not answer`))));
  });
  // (the process may have ended already, a /bin/true: the hooks get its PID all the same, as runc's)
  await runHooks('poststart', hooksOf(r, 'poststart'), { ...ociState(root, r), status: 'running', pid: r.pid });
}

/** Sends WORD to a created container's monitor and waits for its answer. */
function tellMonitor(root: string, id: string, word: string): Promise<boolean> {
  return new Promise((res) => {
    const c = createConnection(socketAddress(startSocket(root, id)), () => c.write(`${word}\n`));
    let got = '';
    c.setEncoding('utf8');
    c.on('data', (d: string) => (got += d));
    c.on('error', () => res(false));
    c.on('close', () => res(got.startsWith('ok')));
  });
}

/** The config's hooks of KIND, from the bundle; none when the record says the config had none at create. */
function hooksOf(r: Record_, kind: HookName) {
  if (r.hooks && !r.hooks.includes(kind)) return undefined;
  return loadSpecQuiet(r.bundle)?.hooks?.[kind];
}

function loadSpecQuiet(bundle: string): Spec | undefined {
  try {
    return loadSpec(join(bundle, 'config.json'));
  } catch {
    return undefined;
  }
}

export function containerState(root: string, id: string): OciState {
  return ociState(root, loadRecord(root, id));
}

export function listContainers(root: string): Array<OciState & { created: string }> {
  const out: Array<OciState & { created: string }> = [];
  for (const id of listIds(root)) {
    try {
      const r = loadRecord(root, id);
      out.push({ ...ociState(root, r), created: r.created });
    } catch {
      // removed meanwhile
    }
  }
  return out;
}

const SIGNALS: Record<string, number> = {
  HUP: 1, INT: 2, QUIT: 3, ILL: 4, TRAP: 5, ABRT: 6, IOT: 6, BUS: 7, FPE: 8, KILL: 9, USR1: 10, SEGV: 11, USR2: 12, PIPE: 13,
  ALRM: 14, TERM: 15, STKFLT: 16, CHLD: 17, CONT: 18, STOP: 19, TSTP: 20, TTIN: 21, TTOU: 22, URG: 23, XCPU: 24, XFSZ: 25,
  VTALRM: 26, PROF: 27, WINCH: 28, IO: 29, POLL: 29, PWR: 30, SYS: 31,
};

/** A signal as runc's kill takes it: 9, KILL, SIGKILL, RTMIN+3. */
export function parseSignal(s: string): number {
  if (/^[0-9]+$/.test(s)) {
    const n = Number(s);
    if (n > 0 && n <= 64) return n;
  }
  const name = s.toUpperCase().replace(/^SIG/, '');
  if (SIGNALS[name] !== undefined) return SIGNALS[name]!;
  const rt = /^RTMIN(?:\+([0-9]+))?$/.exec(name) ?? /^RTMAX(?:-([0-9]+))?$/.exec(name);
  if (rt) {
    const n = name.startsWith('RTMIN') ? 34 + Number(rt[1] ?? 0) : 64 - Number(rt[1] ?? 0);
    if (n >= 34 && n <= 64) return n;
  }
  throw new StateError(`unknown signal "${s}"`);
}

/**
 * `kill`: SIGNAL to the container's PID 1; with ALL (`kill --all`, what containerd's shim sends after PID 1 has
 * ended) to every process in its cgroups instead, and then a stopped container is no error (as runc).
 */
export function killContainer(root: string, id: string, signal: number, all = false): void {
  const r = loadRecord(root, id);
  const status = statusOf(root, r);
  if (all) {
    for (const pid of containerPids(root, id)) {
      try {
        process.kill(pid, signal);
      } catch {
        // gone meanwhile
      }
    }
    return;
  }
  if (status === 'stopped') throw new StateError('container not running');
  process.kill(r.pid, signal);
}

async function waitGone(r: Pick<Record_, 'pid' | 'startTime'>, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (!alive(r)) return true;
    await new Promise((res) => setTimeout(res, 20));
  }
  return false;
}

/** `delete`: a stopped (or, with force, any) container's state goes; poststop hooks run. */
export async function deleteContainer(root: string, id: string, force: boolean, log: CreateOptions['log']): Promise<void> {
  checkId(id);
  if (force && !existsSync(join(containerDir(root, id), 'state.json'))) {
    // runc: delete --force of a container that does not exist succeeds, removing what an aborted create left
    // (containerd's shim deletes twice: once for the task, once more with --force when it shuts down)
    removeContainerDir(root, id);
    return;
  }
  const r = loadRecord(root, id);
  const status = statusOf(root, r);
  if (status === 'running' || status === 'paused') {
    if (!force) throw new StateError(`cannot delete container ${id} that is not stopped: ${status}`);
  }
  if (status === 'created') await tellMonitor(root, id, 'abort');
  if (status !== 'stopped') {
    try {
      process.kill(r.pid, 'SIGKILL');
    } catch {
      // gone
    }
    if (!(await waitGone(r, 10000))) throw new StateError(`container ${id}: process ${r.pid} did not end after SIGKILL`);
  }
  // the monitor leaves once the helper has: wait for it, so that nothing of the container outlives the delete
  await waitGone({ pid: r.monitor, startTime: procStat(r.monitor)?.startTime ?? '' }, 5000);
  try {
    await runHooks('poststop', hooksOf(r, 'poststop'), { ...ociState(root, r), status: 'stopped' });
  } catch (e) {
    log('warning', (e as Error).message);
  }
  removeCgroups(r.cgroups ?? []);
  removeContainerDir(root, id);
}

/** The log of the runtime: text lines, or runc's JSON lines with --log-format=json. */
export function openLog(file: string | undefined, format: 'text' | 'json'): CreateOptions['log'] {
  const fd = file ? openSync(file, 'a') : undefined;
  return (level, msg) => {
    const line = logLine(format, level, msg);
    try {
      if (fd !== undefined) writeSync(fd, `${line}\n`);
      else if (level !== 'info') writeSync(2, `${msg}\n`);
    } catch {
      // nowhere to say it
    }
  };
}

/** One line of the log (without its newline), as openLog() writes it. */
export const logLine = (format: 'text' | 'json', level: string, msg: string): string =>
  format === 'json' ? JSON.stringify({ level, msg, time: new Date().toISOString() }) : `${new Date().toISOString()} ${level}: ${msg}`;
