/**
 * nspawnd: the machine registry (machined) and the supervisor of the containers it starts. Thin over
 * @nspawn/runtime: varlink, the registry model and inspection live there; this file holds the daemon's state and
 * policy (who may call, what survives a restart, when a container is started again).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmdirSync,
  statSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
  writeSync,
  copyFileSync,
} from 'node:fs';
import type { Server, Socket } from 'node:net';
import { join } from 'node:path';
import { parseCommandLine } from '@nspawn/settings';
import {
  applySettingsFile,
  collectLeftovers,
  type ContainerExtension,
  createVarlinkServer,
  defaultExtensions,
  helperPath,
  type HostFacts,
  isValidMachineName,
  killMachine,
  machineAddresses,
  machineHierarchies,
  type MachineInfo,
  machineImageSocketPath,
  machineLogPath,
  machineOsRelease,
  machineScope,
  machineSocketPath,
  machineUidShift,
  nodePrepareEnv,
  nodeTree,
  prepareContainer,
  type NspawndPaths,
  nspawndPaths,
  probeHost,
  releaseMachineSlice,
  procStartTime,
  runContainer,
  spawnHelper,
  varlinkCall,
  VarlinkError,
  type VarlinkHandler,
} from '@nspawn/runtime';
import { type ImageBackend, imageMethods } from './images.js';

export const EXIT_FORCE_RESTART = 133;
/** the console log is rotated past this size, keeping LOG_KEEP old ones */
export const LOG_MAX_BYTES = Number(process.env.NSPAWND_LOG_MAX_BYTES || 1024 * 1024);
export const LOG_KEEP = 3;

interface Entry {
  info: MachineInfo;
  /** the leader's start time (/proc/PID/stat): a recycled PID is not our machine */
  leaderStart: number;
}

interface Managed {
  name: string;
  stopping: boolean;
  logFd: number;
  /** resolves when the first boot is registered, rejects when the start failed before */
  started: Promise<void>;
  /** the exit status of the last run */
  ended: Promise<number>;
}

const noSuchMachine = (name: unknown) => new VarlinkError('io.systemd.Machine.NoSuchMachine', { message: `No machine '${String(name)}' known` });

export interface DaemonOptions {
  paths?: NspawndPaths;
  log?: (line: string) => void;
  images?: ImageBackend;
  /** how often machines whose leader is not our child are checked (ms) */
  pollMs?: number;
}

export class Daemon {
  readonly paths: NspawndPaths;
  private machines = new Map<string, Entry>();
  private managed = new Map<string, Managed>();
  private servers: Server[] = [];
  private timers: NodeJS.Timeout[] = [];
  private host: HostFacts | undefined;
  /** a helper started ahead, waiting for its plan (a zygote): a start does not wait for a process to be made */
  private spare: ChildProcess | undefined;
  private spareTimer: NodeJS.Timeout | undefined;
  private readonly log: (line: string) => void;
  private readonly images: ImageBackend | undefined;
  private readonly pollMs: number;

  constructor(opts: DaemonOptions = {}) {
    this.paths = opts.paths ?? nspawndPaths();
    this.log = opts.log ?? ((l) => void writeSync(2, `nspawnd: ${l}\n`));
    this.images = opts.images;
    this.pollMs = opts.pollMs ?? 1000;
  }

  /** Loads the state, listens, autostarts the enabled machines. */
  async start(): Promise<void> {
    for (const d of [this.paths.runtime, this.paths.state]) {
      mkdirSync(d, { recursive: true, mode: 0o700 });
      chmodSync(d, 0o700);
    }
    await this.listen();
    this.recover();
    // what runs that are gone (kill -9) left on the host: their scopes, snapshots, locks, network (@nspawn/runtime's
    // run records; the containers found again above are live and stay)
    try {
      for (const c of await collectLeftovers()) {
        if (c.removed.length > 0) this.log(`removed what ${c.machine ? `machine ${c.machine}` : 'gone runs'} left behind: ${c.removed.join(', ')}`);
        for (const l of c.left) this.log(`could not remove what machine ${c.machine} left behind: ${l}`);
      }
    } catch (e) {
      this.log(`collecting what gone runs left behind: ${(e as Error).message}`);
    }
    this.timers.push(setInterval(() => this.reap(), this.pollMs));
    this.timers.push(setInterval(() => this.rotateLogs(), 5000));
    this.makeSpare();
    await this.autostart();
  }

  /** Stops listening; the containers keep running (a new nspawnd finds them again). */
  /** The spare helper, and another made soon (not now: making a process blocks us for milliseconds). */
  private takeHelper(): ChildProcess {
    const h = this.spare && this.spare.exitCode === null && this.spare.signalCode === null ? this.spare : spawnHelper({ stdio: ['ignore', 'ignore', 'ignore'] });
    this.spare = undefined;
    if (!this.spareTimer)
      this.spareTimer = setTimeout(() => {
        this.spareTimer = undefined;
        this.makeSpare();
      }, 50);
    return h;
  }

  private makeSpare(): void {
    if (this.spare || this.stopped) return;
    const h = spawnHelper({ stdio: ['ignore', 'ignore', 'ignore'] });
    h.on('error', () => {});
    (h.stdio[3] as Socket).on('error', () => {});
    this.spare = h;
  }

  private stopped = false;

  async stop(): Promise<void> {
    this.stopped = true;
    this.credServer?.proc.kill();
    if (this.spareTimer) clearTimeout(this.spareTimer);
    if (this.spare) (this.spare.stdio[3] as Socket).end(); // no plan: it leaves quietly
    this.spare = undefined;
    this.reap();
    // containers that are ending right now: let their teardown (cgroup removal) finish, briefly
    const ending = [...this.managed.values()].filter((m) => {
      const e = this.machines.get(m.name);
      return !e || !this.alive(e) || m.stopping;
    });
    if (ending.length > 0) await Promise.race([Promise.all(ending.map((m) => m.ended)), new Promise((r) => setTimeout(r, 3000))]);
    for (const t of this.timers) clearInterval(t);
    // (also when this daemon started no container itself: one before it, killed, may have left the slice)
    releaseMachineSlice((this.host ??= probeHost()).cgroups);
    await Promise.all(this.servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    for (const p of [machineSocketPath(this.env()), machineImageSocketPath(this.env())]) {
      try {
        unlinkSync(p);
      } catch {
        // gone
      }
    }
  }

  private env(): NodeJS.ProcessEnv {
    return { ...process.env, NSPAWND_RUNTIME_DIR: this.paths.runtime };
  }

  // ---------- the socket ----------

  private async listen(): Promise<void> {
    const methods = { ...this.machineMethods(), ...(this.images ? imageMethods(this.images, (n) => this.machines.has(n)) : {}) };
    for (const path of [machineSocketPath(this.env()), machineImageSocketPath(this.env())]) {
      if (existsSync(path)) {
        // another nspawnd answering there? then we are not needed; a stale socket is removed
        const alive = await varlinkCall(path, 'org.varlink.service.GetInfo', {}, { timeoutMs: 1000 }).then(
          () => true,
          () => false,
        );
        if (alive) throw new Error(`another nspawnd is listening on ${path}`);
        unlinkSync(path);
      }
      const server = createVarlinkServer({
        methods,
        accept: (sock) => this.checkPeer(sock),
        info: { vendor: 'nspawn', product: 'nspawnd', version: '0.1.0', url: 'https://github.com/nspawn' },
      });
      // root only: the socket is 0600 in a 0700 directory, and each peer's credentials are checked
      const old = process.umask(0o177);
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(path, () => resolve());
        });
      } finally {
        process.umask(old);
      }
      chmodSync(path, 0o600);
      this.servers.push(server);
    }
  }

  /**
   * SO_PEERCRED: Node has no API for it, so the runtime's helper reads it. One `nspawn-helper peercred-server`
   * runs beside us: we write the connection's fd number, it takes a copy of that fd from us (pidfd_getfd) and
   * answers the peer's PID, UID and GID (~0.1 ms; a process per connection would cost ~5 ms here). Should it be
   * gone, `nspawn-helper peercred` with the connection as its stdin does the same once. Only root (UID 0) may talk.
   */
  private credServer: { proc: ChildProcess; waiting: Array<(line: string) => void>; buf: string } | undefined;

  private peerCredentials(fd: number): Promise<string> {
    let s = this.credServer;
    if (!s || s.proc.exitCode !== null || s.proc.signalCode !== null) {
      const proc = spawn(helperPath(), ['peercred-server', String(process.pid)], { stdio: ['pipe', 'pipe', 'ignore'] });
      s = { proc, waiting: [], buf: '' };
      const srv = s;
      proc.on('error', () => {});
      proc.stdin!.on('error', () => {});
      proc.stdout!.on('data', (d: Buffer) => {
        srv.buf += d.toString();
        let i;
        while ((i = srv.buf.indexOf('\n')) >= 0) {
          const line = srv.buf.slice(0, i);
          srv.buf = srv.buf.slice(i + 1);
          srv.waiting.shift()?.(line);
        }
      });
      proc.on('close', () => {
        for (const w of srv.waiting.splice(0)) w('-');
        if (this.credServer === srv) this.credServer = undefined;
      });
      proc.unref();
      (proc.stdout as unknown as { unref?: () => void }).unref?.();
      (proc.stdin as unknown as { unref?: () => void }).unref?.();
      this.credServer = s;
    }
    const srv = s;
    return new Promise((resolve) => {
      srv.waiting.push(resolve);
      srv.proc.stdin!.write(`${fd}\n`);
    });
  }

  private peerCredentialsOnce(fd: number): Promise<string> {
    return new Promise((resolve) => {
      const c = spawn(helperPath(), ['peercred'], { stdio: [fd, 'pipe', 'ignore'] });
      let out = '';
      c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      c.on('error', () => resolve('-'));
      c.on('close', () => resolve(out.trim() || '-'));
    });
  }

  private async checkPeer(sock: Socket): Promise<{ pid: number; uid: number; gid: number }> {
    const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (typeof fd !== 'number' || fd < 0) throw new Error('no fd');
    let line = await this.peerCredentials(fd);
    if (line === '-' && !sock.destroyed) line = await this.peerCredentialsOnce(fd);
    const [pid, uid, gid] = line.trim().split(' ').map(Number);
    if (uid === undefined || Number.isNaN(uid) || line === '-') throw new Error('peer credentials unknown');
    if (uid !== 0) {
      this.log(`refused a connection from UID ${uid} (PID ${pid})`);
      throw new Error('not root');
    }
    return { pid: pid!, uid, gid: gid! };
  }

  // ---------- the registry ----------

  private statePath(name: string): string {
    return join(this.paths.state, `${name}.json`);
  }

  private save(e: Entry): void {
    const p = this.statePath(e.info.name);
    writeFileSync(`${p}.tmp`, JSON.stringify(e), { mode: 0o600 });
    renameSync(`${p}.tmp`, p);
  }

  private add(e: Entry): void {
    this.machines.set(e.info.name, e);
    this.save(e);
  }

  private drop(name: string, leader?: number): void {
    const e = this.machines.get(name);
    if (!e || (leader !== undefined && e.info.leader?.pid !== leader)) return;
    this.machines.delete(name);
    try {
      unlinkSync(this.statePath(name));
    } catch {
      // gone
    }
  }

  private alive(e: Entry): boolean {
    const pid = e.info.leader?.pid;
    return pid !== undefined && procStartTime(pid) === e.leaderStart;
  }

  /** After a restart: the machines of the saved state whose leader still runs are ours again. */
  private recover(): void {
    for (const f of readdirSync(this.paths.state)) {
      if (f.endsWith('.starting')) {
        // a start we did not finish: the container never ran its payload (the helper ends it without our "go")
        unlinkSync(join(this.paths.state, f));
        const name = f.slice(0, -'.starting'.length);
        if (!existsSync(this.statePath(name))) this.removeScopeLater(name);
        continue;
      }
      if (!f.endsWith('.json')) {
        if (f.endsWith('.tmp')) unlinkSync(join(this.paths.state, f));
        continue;
      }
      let e: Entry;
      try {
        e = JSON.parse(readFileSync(join(this.paths.state, f), 'utf8')) as Entry;
      } catch {
        continue;
      }
      if (this.alive(e)) {
        this.machines.set(e.info.name, e);
        this.log(`found machine ${e.info.name} (leader ${e.info.leader?.pid}) again`);
      } else {
        unlinkSync(join(this.paths.state, f));
        if (e.info.managed) this.removeScopeLater(e.info.name);
      }
    }
  }

  /** Forgets machines whose leader is gone (nspawn killed with -9, or a container we found again after a restart). */
  private reap(): void {
    for (const [name, e] of this.machines) {
      if (this.managed.has(name) || this.alive(e)) continue;
      this.log(`machine ${name} is gone`);
      this.drop(name);
      if (e.info.managed) this.removeScopeLater(name);
    }
  }

  /** The helper of an unfinished start may still be ending its container: remove its cgroup once it has. */
  private removeScopeLater(name: string): void {
    let tries = 0;
    const t = setInterval(() => {
      this.removeScope(name);
      const left = machineHierarchies((this.host ??= probeHost()).cgroups).some((h) => existsSync(join(h.mount, machineScope(name).path)));
      if (!left || ++tries > 40 || this.machines.has(name)) {
        clearInterval(t);
        this.timers = this.timers.filter((x) => x !== t);
      }
    }, 250);
    this.timers.push(t);
    this.removeScope(name);
  }

  /** The cgroup a container that ended without its supervisor leaves behind (empty directories only). */
  private removeScope(name: string): void {
    try {
      this.host ??= probeHost();
      for (const h of machineHierarchies(this.host.cgroups)) {
        const dir = join(h.mount, machineScope(name).path);
        const rm = (d: string) => {
          if (!existsSync(d)) return;
          for (const sub of readdirSync(d, { withFileTypes: true })) if (sub.isDirectory()) rm(join(d, sub.name));
          try {
            rmdirSync(d);
          } catch {
            // busy: still has processes
          }
        };
        rm(dir);
      }
    } catch {
      // nothing to remove
    }
  }

  private describe(e: Entry, metadata: boolean): MachineInfo {
    const info: MachineInfo = { ...e.info };
    info.state = this.managed.get(e.info.name)?.stopping ? 'closing' : 'running';
    const pid = e.info.leader?.pid;
    if (metadata && pid !== undefined) {
      const os = machineOsRelease(pid);
      if (os) info.OSRelease = os;
      info.addresses = machineAddresses(pid);
      const shift = machineUidShift(pid);
      if (shift !== undefined) info.UIDShift = shift;
    }
    return info;
  }

  private lookup(p: Record<string, unknown>): Entry {
    if (typeof p.name === 'string') {
      const e = this.machines.get(p.name);
      if (!e || !this.alive(e)) throw noSuchMachine(p.name);
      return e;
    }
    if (typeof p.pid === 'object' && p.pid !== null) {
      const pid = (p.pid as { pid: number }).pid;
      for (const e of this.machines.values()) if (e.info.leader?.pid === pid) return e;
      throw noSuchMachine(`PID ${pid}`);
    }
    throw new VarlinkError('org.varlink.service.InvalidParameter', { parameter: 'name' });
  }

  private machineMethods(): Record<string, VarlinkHandler> {
    return {
      'io.systemd.Machine.Register': (p, ctx) => {
        const name = p.name;
        if (typeof name !== 'string' || !isValidMachineName(name)) throw new VarlinkError('org.varlink.service.InvalidParameter', { parameter: 'name' });
        const leader =
          typeof p.leader === 'number' ? p.leader : typeof p.leaderProcessId === 'object' && p.leaderProcessId ? (p.leaderProcessId as { pid: number }).pid : undefined;
        if (leader === undefined || leader <= 0) throw new VarlinkError('org.varlink.service.InvalidParameter', { parameter: 'leader' });
        const leaderStart = procStartTime(leader);
        if (leaderStart === undefined) throw new VarlinkError('org.varlink.service.InvalidParameter', { parameter: 'leader', message: `PID ${leader} does not exist` });
        const old = this.machines.get(name);
        if (old && this.alive(old)) throw new VarlinkError('io.systemd.Machine.MachineExists', { message: `Machine '${name}' already exists` });
        const info: MachineInfo = {
          name,
          class: typeof p.class === 'string' ? p.class : 'container',
          leader: { pid: leader },
          unit: machineScope(name).unit,
          timestamp: { realtime: Date.now() * 1000, monotonic: Math.round(performance.timeOrigin * 1000 + performance.now() * 1000) },
        };
        if (typeof p.id === 'string' && /^[0-9a-fA-F]{32}$/.test(p.id)) info.id = p.id.toLowerCase();
        if (typeof p.service === 'string') info.service = p.service;
        if (typeof p.rootDirectory === 'string') info.rootDirectory = p.rootDirectory;
        if (Array.isArray(p.ifIndices)) info.ifIndices = p.ifIndices.filter((x): x is number => typeof x === 'number');
        const sup = typeof p.supervisor === 'number' ? p.supervisor : ctx.peer?.pid;
        if (sup) info.supervisor = { pid: sup };
        if (typeof p.UIDShift === 'number') info.UIDShift = p.UIDShift;
        if (ctx.peer) info.UID = ctx.peer.uid;
        this.add({ info, leaderStart });
        this.log(`registered machine ${name} (leader ${leader})`);
        return {};
      },
      'io.systemd.Machine.Unregister': (p) => {
        const e = this.lookup(p);
        this.drop(e.info.name);
        return {};
      },
      'io.systemd.Machine.List': (p, ctx) => {
        this.reap();
        const metadata = p.acquireMetadata === 'yes' || p.acquireMetadata === 'graceful';
        if (p.name !== undefined || p.pid !== undefined) return this.describe(this.lookup(p), metadata) as unknown as Record<string, unknown>;
        const all = [...this.machines.values()].filter((e) => this.alive(e)).sort((a, b) => a.info.name.localeCompare(b.info.name));
        if (all.length === 0) throw new VarlinkError('io.systemd.Machine.NoSuchMachine', {});
        if (!ctx.call.more && all.length > 1) throw new VarlinkError('org.varlink.service.ExpectedMore', {});
        for (const e of all.slice(0, -1)) ctx.reply(this.describe(e, metadata) as unknown as Record<string, unknown>);
        return this.describe(all[all.length - 1]!, metadata) as unknown as Record<string, unknown>;
      },
      'io.systemd.Machine.Kill': (p) => {
        const e = this.lookup(p);
        const sig = p.signal;
        if (typeof sig !== 'number' || !Number.isInteger(sig) || sig <= 0 || sig > 64) throw new VarlinkError('org.varlink.service.InvalidParameter', { parameter: 'signal' });
        const whom = p.whom ?? 'all';
        if (whom !== 'all' && whom !== 'leader' && whom !== 'supervisor') throw new VarlinkError('org.varlink.service.InvalidParameter', { parameter: 'whom' });
        if (whom === 'supervisor') {
          const s = e.info.supervisor?.pid;
          if (s === undefined) throw new VarlinkError('io.systemd.Machine.NotAvailable', { message: 'no supervisor' });
          process.kill(s, sig);
        } else {
          // poweroff/reboot through the leader is a stop we must not undo by restarting
          killMachine(e.info.leader!.pid, sig, whom);
        }
        return {};
      },
      'io.systemd.Machine.Terminate': (p) => {
        const e = this.lookup(p);
        const m = this.managed.get(e.info.name);
        if (m) m.stopping = true;
        killMachine(e.info.leader!.pid, 9, 'leader');
        return {};
      },
      // nspawnd's own interface: what machined leaves to systemd (starting nspawn@NAME.service)
      'io.nspawn.Machine.Start': async (p) => {
        const name = p.name;
        if (typeof name !== 'string' || !isValidMachineName(name)) throw new VarlinkError('org.varlink.service.InvalidParameter', { parameter: 'name' });
        const command = Array.isArray(p.command) ? p.command.map(String) : undefined;
        if (command && command.length === 0) throw new VarlinkError('org.varlink.service.InvalidParameter', { parameter: 'command' });
        const { ended } = await this.startMachine(name, command);
        if (p.wait === true) return { exitStatus: await ended };
        const e = this.machines.get(name);
        return e ? (this.describe(e, true) as unknown as Record<string, unknown>) : {};
      },
      'io.nspawn.Machine.Poweroff': (p) => {
        const e = this.lookup(p);
        const m = this.managed.get(e.info.name);
        if (m) m.stopping = true;
        killMachine(e.info.leader!.pid, 38 /* SIGRTMIN+4 */, 'leader');
        return {};
      },
    };
  }

  // ---------- supervision ----------

  /** The image directory of NAME. */
  private imageDir(name: string): string {
    const dir = join(this.paths.images, name);
    if (!existsSync(dir) || !statSync(dir).isDirectory())
      throw new VarlinkError('io.systemd.MachineImage.NoSuchImage', { message: `No image '${name}' in ${this.paths.images}` });
    return dir;
  }

  /**
   * Starts NAME as nspawn@NAME.service would (`nspawn --quiet --keep-unit --boot --link-journal=try-guest -D DIR -M NAME`
   * with NAME.nspawn), its console in the machine's log; resolves once it is registered. The container runs in
   * the helper, a child of this process but not dying with it; a reboot (exit 133) starts it again.
   */
  async startMachine(name: string, command?: string[]): Promise<{ ended: Promise<number> }> {
    const running = this.machines.get(name);
    const pending = this.managed.get(name);
    if (pending) {
      await pending.started;
      return { ended: pending.ended };
    }
    if (running && this.alive(running)) {
      if (command) throw new VarlinkError('io.systemd.Machine.MachineExists', { message: `Machine '${name}' is running already` });
      return { ended: Promise.resolve(0) };
    }
    const dir = this.imageDir(name);
    mkdirSync(this.paths.logs, { recursive: true, mode: 0o750 });
    const logPath = machineLogPath(name, { ...process.env, NSPAWND_LOG_DIR: this.paths.logs });
    const logFd = openSync(logPath, 'a', 0o640);
    let startedOk!: () => void;
    let startFailed!: (e: Error) => void;
    let endedWith!: (code: number) => void;
    const m: Managed = {
      name,
      stopping: false,
      logFd,
      started: new Promise<void>((res, rej) => {
        startedOk = res;
        startFailed = rej;
      }),
      ended: new Promise<number>((res) => (endedWith = res)),
    };
    m.started.catch(() => {});
    this.managed.set(name, m);
    // if we die before the container is registered, the next nspawnd removes what the start left (an empty cgroup)
    const marker = join(this.paths.state, `${name}.starting`);
    writeFileSync(marker, String(process.pid), { mode: 0o600 });
    const say = (l: string) => {
      try {
        writeSync(logFd, `${l}\n`);
      } catch {
        // full disk: nothing to do
      }
    };
    let ok = false;
    const ext: ContainerExtension = {
      name: 'nspawnd',
      plan: (_run, plan) => {
        plan.survive = true;
        plan.sync = true;
        plan.stdoutPath = logPath;
      },
      attach: (run, pid) => {
        const start = procStartTime(pid);
        if (start === undefined) throw new Error(`the container's PID 1 (${pid}) is gone`);
        this.add({
          info: {
            name,
            id: run.cfg.uuid.replace(/-/g, ''),
            service: 'nspawnd',
            class: 'container',
            leader: { pid },
            supervisor: { pid: process.pid },
            rootDirectory: run.cfg.directory,
            unit: machineScope(name).unit,
            timestamp: { realtime: Date.now() * 1000 },
            managed: true,
            ...(run.cfg.userns ? { UIDShift: run.cfg.userns.shift } : {}),
          },
          leaderStart: start,
        });
        ok = true;
        try {
          unlinkSync(marker);
        } catch {
          // a reboot: gone already
        }
        startedOk();
      },
      detach: () => {
        this.drop(name);
      },
    };
    // a command (not a boot) runs with its output straight into the log (no pty to copy from)
    const argv = command
      ? ['--quiet', '--keep-unit', '--console=pipe', '-D', dir, '-M', name, '--', ...command]
      : ['--quiet', '--keep-unit', '--boot', '--link-journal=try-guest', '--console=read-only', '-D', dir, '-M', name];
    let lastCode = 1;
    const run = async () => {
      try {
        for (;;) {
          const cl = parseCommandLine(argv);
          const { settings, messages } = applySettingsFile(cl);
          for (const msg of messages) say(msg);
          const prepared = prepareContainer(settings, nodePrepareEnv(nodeTree), cl.unsupported, cl.settings);
          this.host ??= probeHost();
          // machine.slice stays between the daemon's containers (made once, not for each start); stop() gives it up
          prepared.config.keepMachineSlice = true;
          const extensions = [...defaultExtensions().filter((x) => x.name !== 'register'), ext];
          say(`-- nspawnd: starting ${name} on ${dir}`);
          const code = await runContainer(prepared, { log: say, forwardSignals: false, spawnHelper: () => this.takeHelper() }, this.host, ['ignore', logFd, logFd], extensions);
          say(`-- nspawnd: ${name} ended with status ${code}`);
          lastCode = code;
          if (code === EXIT_FORCE_RESTART && !m.stopping) {
            this.log(`machine ${name} reboots`);
            continue;
          }
          if (!ok) startFailed(new Error(`Failed to start machine ${name} (status ${code}); see ${machineLogPath(name, { ...process.env, NSPAWND_LOG_DIR: this.paths.logs })}`));
          break;
        }
      } catch (e) {
        say(`-- nspawnd: ${(e as Error).message}`);
        startFailed(e as Error);
      } finally {
        this.managed.delete(name);
        this.drop(name);
        closeSync(logFd);
        endedWith(lastCode);
        try {
          unlinkSync(marker);
        } catch {
          // removed when it was registered
        }
      }
    };
    void run();
    try {
      await m.started;
    } catch (e) {
      throw new VarlinkError('io.nspawn.Machine.StartFailed', { message: (e as Error).message });
    }
    return { ended: m.ended };
  }

  /** Machines marked enabled (files in the enabled directory) that are not running are started. */
  private async autostart(): Promise<void> {
    let names: string[] = [];
    try {
      names = readdirSync(this.paths.enabled);
    } catch {
      return;
    }
    await Promise.all(
      names
        .filter((n) => isValidMachineName(n) && !this.machines.has(n))
        .map((n) =>
          this.startMachine(n).then(
            () => this.log(`started enabled machine ${n}`),
            (e: Error) => this.log(`failed to start enabled machine ${n}: ${e.message}`),
          ),
        ),
    );
  }

  /** copytruncate rotation: the helper writes with O_APPEND, so it goes on at the new end. */
  private rotateLogs(): void {
    let files: string[];
    try {
      files = readdirSync(this.paths.logs).filter((f) => f.endsWith('.log'));
    } catch {
      return;
    }
    for (const f of files) {
      const p = join(this.paths.logs, f);
      try {
        if (statSync(p).size <= LOG_MAX_BYTES) continue;
        for (let i = LOG_KEEP - 1; i >= 1; i--) if (existsSync(`${p}.${i}`)) renameSync(`${p}.${i}`, `${p}.${i + 1}`);
        copyFileSync(p, `${p}.1`);
        truncateSync(p, 0);
      } catch (e) {
        this.log(`rotating ${p}: ${(e as Error).message}`);
      }
    }
  }

  /** for tests and the memory bench */
  get size(): number {
    return this.machines.size;
  }
}
