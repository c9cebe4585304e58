/**
 * The containers nspawnd runs itself (systemd-nspawn@.service's part): starting an image as
 * `nspawn BOOT_ARGV -D DIR --machine=NAME` (systemd-nspawn@.service's flags) with NAME.nspawn applied, in-process
 * through @nspawn/assembly, its console in the machine's log (rotated), a reboot (exit 133) started again; a spare
 * helper kept ready so a start never waits for a process to be made; the machines enabled for autostart; and the
 * cgroups a container that ended without its supervisor leaves behind.
 */
import type { ChildProcess } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readdirSync, renameSync, rmdirSync, statSync, truncateSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { findImage, ImageError } from '@nspawn/btrfs';
import { applySettingsFile, type ContainerExtension, prepareStart, runStart } from '@nspawn/assembly';
import {
  type HostFacts,
  machineHierarchies,
  machineLogPath,
  machineScope,
  type NspawndPaths,
  probeHost,
  releaseMachineSlice,
  spawnHelper,
  VarlinkError,
} from '@nspawn/runtime';
import { machineNameIsValid, parseCommandLine } from '@nspawn/settings';
import type { Registry } from './registry.js';

export const EXIT_FORCE_RESTART = 133;
/** the console log is rotated past this size, keeping LOG_KEEP old ones */
export const LOG_MAX_BYTES = Number(process.env.NSPAWND_LOG_MAX_BYTES || 1024 * 1024);
export const LOG_KEEP = 3;

/**
 * What nspawnd starts an image with (`nspawn BOOT_ARGV -D DIR --machine=NAME`), as nspawnctl(1) says: the flags of
 * systemd-nspawn@.service (a private network, `--network-veth`, and a private user namespace, `-U`, with the tree's
 * ownership `auto`), plus `--console=read-only`: the console goes to the machine's log, not to a terminal.
 */
export const BOOT_ARGV: readonly string[] = [
  '--quiet',
  '--keep-unit',
  '--boot',
  '--link-journal=try-guest',
  '--network-veth',
  '-U',
  '--settings=override',
  '--console=read-only',
];
/** What nspawnd runs a command in an image with (`nspawn COMMAND_ARGV -D DIR -M NAME -- CMD`). */
export const COMMAND_ARGV: readonly string[] = ['--quiet', '--keep-unit', '--console=pipe'];

interface Managed {
  name: string;
  stopping: boolean;
  logFd: number;
  /** resolves when the first boot is registered, rejects when the start failed before */
  started: Promise<void>;
  /** the exit status of the last run */
  ended: Promise<number>;
}

export class Supervisor {
  private readonly managed = new Map<string, Managed>();
  private host: HostFacts | undefined;
  /** a helper started ahead, waiting for its plan (a zygote): a start does not wait for a process to be made */
  private spare: ChildProcess | undefined;
  private spareTimer: NodeJS.Timeout | undefined;
  private timers: NodeJS.Timeout[] = [];
  private stopped = false;

  constructor(
    private readonly paths: NspawndPaths,
    private readonly registry: Registry,
    private readonly log: (line: string) => void,
  ) {}

  /** Starts the log rotation and the spare helper. */
  start(): void {
    this.timers.push(setInterval(() => this.rotateLogs(), 5000));
    this.makeSpare();
  }

  /** Whether nspawnd runs machine NAME itself (a start or its run under way). */
  isManaged(name: string): boolean {
    return this.managed.has(name);
  }

  isStopping(name: string): boolean {
    return this.managed.get(name)?.stopping === true;
  }

  /** A stop asked for (terminate, poweroff): a reboot is not started again. */
  markStopping(name: string): void {
    const m = this.managed.get(name);
    if (m) m.stopping = true;
  }

  /** Stops making helpers; waits briefly for the containers that are ending right now (their cgroup removal). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.spareTimer) clearTimeout(this.spareTimer);
    if (this.spare) (this.spare.stdio[3] as Socket).end(); // no plan: it leaves quietly
    this.spare = undefined;
    const ending = [...this.managed.values()].filter((m) => !this.registry.running(m.name) || m.stopping);
    if (ending.length > 0) await Promise.race([Promise.all(ending.map((m) => m.ended)), new Promise((r) => setTimeout(r, 3000))]);
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    // (also when this daemon started no container itself: one before it, killed, may have left the slice)
    releaseMachineSlice(this.hostFacts().cgroups);
  }

  private hostFacts(): HostFacts {
    return (this.host ??= probeHost());
  }

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

  /**
   * After a restart: starts that were cut short (a NAME.starting marker) left an empty cgroup at most; the caller
   * hands over the machines of the saved state that are gone (`scopeLeftBy`).
   */
  recover(): void {
    for (const f of readdirSync(this.paths.state)) {
      if (!f.endsWith('.starting')) continue;
      // a start we did not finish: the container never ran its payload (the helper ends it without our "go")
      unlinkSync(join(this.paths.state, f));
      const name = f.slice(0, -'.starting'.length);
      if (machineNameIsValid(name) && !existsSync(join(this.paths.state, `${name}.json`))) this.removeScopeLater(name);
    }
  }

  /** A machine that ended without its supervisor: its cgroup, when nspawnd ran it, is removed. */
  scopeLeftBy(name: string, managed: boolean | undefined): void {
    if (managed) this.removeScopeLater(name);
  }

  /** The helper of an unfinished start may still be ending its container: remove its cgroup once it has. */
  private removeScopeLater(name: string): void {
    let tries = 0;
    const t = setInterval(() => {
      this.removeScope(name);
      const left = machineHierarchies(this.hostFacts().cgroups).some((h) => existsSync(join(h.mount, machineScope(name).path)));
      if (!left || ++tries > 40 || this.registry.has(name)) {
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
      for (const h of machineHierarchies(this.hostFacts().cgroups)) {
        const rm = (d: string) => {
          if (!existsSync(d)) return;
          for (const sub of readdirSync(d, { withFileTypes: true })) if (sub.isDirectory()) rm(join(d, sub.name));
          try {
            rmdirSync(d);
          } catch {
            // busy: still has processes
          }
        };
        rm(join(h.mount, machineScope(name).path));
      }
    } catch {
      // nothing to remove
    }
  }

  /**
   * The image of NAME, through the store's one resolver (never a path out of the store): a directory (`-D`) or a raw
   * disk image NAME.raw (`-i`), as systemd-nspawn@.service's `--machine=NAME` finds either.
   */
  private imageDir(name: string): { flag: '-D' | '-i'; path: string } {
    try {
      const img = findImage(name, { root: this.paths.images });
      // a symlink in the store is started where it leads (inside the store): the path the lock and registration name
      return { flag: img.type === 'raw' ? '-i' : '-D', path: img.symlink ? img.realPath : img.path };
    } catch (e) {
      if (!(e instanceof ImageError)) throw e;
      // a symlink out of the store: said as it is, not as a missing image
      if (e.code !== 'ENOENT' && e.code !== 'EINVAL') throw new VarlinkError('io.nspawn.Machine.StartFailed', { message: e.message });
    }
    throw new VarlinkError('io.systemd.MachineImage.NoSuchImage', { message: `No image '${name}' in ${this.paths.images}` });
  }

  /**
   * Starts NAME as nspawn@NAME.service would (`nspawn --quiet --keep-unit --boot --link-journal=try-guest -D DIR -M NAME`
   * with NAME.nspawn), its console in the machine's log; resolves once it is registered. The container runs in
   * the helper, a child of this process but not dying with it; a reboot (exit 133) starts it again.
   */
  async startMachine(name: string, command?: string[]): Promise<{ ended: Promise<number> }> {
    const pending = this.managed.get(name);
    if (pending) {
      await pending.started;
      return { ended: pending.ended };
    }
    if (this.registry.running(name)) {
      if (command) throw new VarlinkError('io.systemd.Machine.MachineExists', { message: `Machine '${name}' is running already` });
      return { ended: Promise.resolve(0) };
    }
    const { flag, path: dir } = this.imageDir(name);
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
        const registered = this.registry.addOwn(
          {
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
          pid,
        );
        if (!registered) throw new Error(`the container's PID 1 (${pid}) is gone`);
        ok = true;
        try {
          unlinkSync(marker);
        } catch {
          // a reboot: gone already
        }
        startedOk();
      },
      detach: () => {
        this.registry.drop(name);
      },
    };
    // BOOT_ARGV (as nspawn@.service) or, for a command (not a boot), COMMAND_ARGV with its output straight into the
    // log (no pty to copy from), parsed as nspawn parses them; SET: what NAME.nspawn may not override
    const { settings: base, set } = parseCommandLine(
      command ? [...COMMAND_ARGV, flag, dir, '-M', name, '--', ...command] : [...BOOT_ARGV, flag, dir, `--machine=${name}`],
    );
    let lastCode = 1;
    const run = async () => {
      try {
        for (;;) {
          const { settings, messages } = applySettingsFile({ settings: base, set });
          for (const msg of messages) say(msg);
          const prepared = await prepareStart(settings, { commandLine: base });
          // machine.slice stays between the daemon's containers (made once, not for each start); stop() gives it up
          prepared.config.keepMachineSlice = true;
          say(`-- nspawnd: starting ${name} on ${dir}`);
          // nspawnd registers its containers itself (EXT), not through the varlink socket it serves
          const code = await runStart(prepared, {
            register: false,
            extra: [ext],
            handoff: false,
            hooks: { log: say, forwardSignals: false, spawnHelper: () => this.takeHelper() },
            host: this.hostFacts(),
            stdio: ['ignore', logFd, logFd],
          });
          say(`-- nspawnd: ${name} ended with status ${code}`);
          lastCode = code;
          if (code === EXIT_FORCE_RESTART && !m.stopping) {
            this.log(`machine ${name} reboots`);
            continue;
          }
          if (!ok) startFailed(new Error(`Failed to start machine ${name} (status ${code}); see ${logPath}`));
          break;
        }
      } catch (e) {
        say(`-- nspawnd: ${(e as Error).message}`);
        startFailed(e as Error);
      } finally {
        this.managed.delete(name);
        this.registry.drop(name);
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
  async autostart(): Promise<void> {
    let names: string[] = [];
    try {
      names = readdirSync(this.paths.enabled);
    } catch {
      return;
    }
    await Promise.all(
      names
        .filter((n) => machineNameIsValid(n) && !this.registry.has(n))
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
}
