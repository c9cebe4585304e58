/**
 * nspawnd: the machine registry (machined) and the supervisor of the containers it starts, put together. Each
 * concern has its module: the registry and its persistence (registry.ts), what a Register call must satisfy
 * (admission.ts), pinned processes (pinned.ts), the io.systemd.Machine methods (machine-api.ts), the containers
 * nspawnd runs (supervision.ts), the image methods (images.ts, image-backend.ts) and the sockets (service.ts).
 * Thin over @nspawn/runtime: varlink, the registry model and inspection live there.
 */
import { chmodSync, mkdirSync, writeSync } from 'node:fs';
import type { Server } from 'node:net';
import { machineImageSocketPath, machineSocketPath, type NspawndPaths, nspawndPaths } from '@nspawn/runtime';
import { type ImageBackend, imageMethods } from './images.js';
import { machineMethods } from './machine-api.js';
import { preparePidfds } from './pinned.js';
import { Registry } from './registry.js';
import { closeServers, listen, PeerCredentials } from './service.js';
import { Supervisor } from './supervision.js';

export { EXIT_FORCE_RESTART, LOG_KEEP, LOG_MAX_BYTES } from './supervision.js';

export interface DaemonOptions {
  paths?: NspawndPaths;
  log?: (line: string) => void;
  images?: ImageBackend;
  /** how often machines whose leader is not our child are checked (ms) */
  pollMs?: number;
}

export class Daemon {
  readonly paths: NspawndPaths;
  private readonly log: (line: string) => void;
  private readonly images: ImageBackend | undefined;
  private readonly pollMs: number;
  private readonly registry: Registry;
  private readonly supervisor: Supervisor;
  private readonly creds: PeerCredentials;
  private servers: Server[] = [];
  private reaper: NodeJS.Timeout | undefined;

  constructor(opts: DaemonOptions = {}) {
    this.paths = opts.paths ?? nspawndPaths();
    this.log = opts.log ?? ((l) => void writeSync(2, `nspawnd: ${l}\n`));
    this.images = opts.images;
    this.pollMs = opts.pollMs ?? 1000;
    this.registry = new Registry(this.paths.state, this.log);
    this.supervisor = new Supervisor(this.paths, this.registry, this.log);
    this.creds = new PeerCredentials(this.log);
  }

  private sockets(): string[] {
    const env = { ...process.env, NSPAWND_RUNTIME_DIR: this.paths.runtime };
    return [machineSocketPath(env), machineImageSocketPath(env)];
  }

  /** Loads the state, listens, autostarts the enabled machines. */
  async start(): Promise<void> {
    for (const d of [this.paths.runtime, this.paths.state]) {
      mkdirSync(d, { recursive: true, mode: 0o700 });
      chmodSync(d, 0o700);
    }
    // pidfds (koffi and the kernel's answer) ready before any machine is pinned
    if (!preparePidfds()) this.log('no pidfds (pidfd_open(2)): leaders are checked by their start time before each signal');
    const methods = { ...machineMethods(this.registry, this.supervisor), ...(this.images ? imageMethods(this.images, (n) => this.registry.has(n)) : {}) };
    this.servers = await listen(this.sockets(), methods, this.creds);
    this.supervisor.recover();
    this.registry.recover((name, r) => this.supervisor.scopeLeftBy(name, r.info.managed));
    this.reaper = setInterval(() => this.reap(), this.pollMs);
    this.supervisor.start();
    await this.supervisor.autostart();
  }

  /** Forgets machines whose leader is gone (nspawn killed with -9, or a container found again after a restart). */
  private reap(): void {
    this.registry.reap(
      (name) => this.supervisor.isManaged(name),
      (name, r) => this.supervisor.scopeLeftBy(name, r.info.managed),
    );
  }

  /** Stops listening; the containers keep running (a new nspawnd finds them again). */
  async stop(): Promise<void> {
    this.creds.close();
    this.reap();
    await this.supervisor.stop();
    if (this.reaper) clearInterval(this.reaper);
    await closeServers(this.servers, this.sockets());
  }

  /** Starts image NAME (see Supervisor.startMachine). */
  startMachine(name: string, command?: string[]): Promise<{ ended: Promise<number> }> {
    return this.supervisor.startMachine(name, command);
  }

  /** for tests and the memory bench */
  get size(): number {
    return this.registry.size;
  }
}
