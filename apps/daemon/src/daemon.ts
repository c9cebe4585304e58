/**
 * nspawnd: the machine registry (machined) and the supervisor of the containers it starts, put together. Each
 * concern has its module: the registry and its persistence (registry.ts), what a Register call must satisfy
 * (admission.ts), pinned processes (pinned.ts), the io.systemd.Machine methods (machine-api.ts), the containers
 * nspawnd runs (supervision.ts), the image methods (images.ts, image-backend.ts), the image transfers (transfers.ts) and the sockets (service.ts).
 * Thin over @nspawn/runtime: varlink, the registry model and inspection live there.
 */
import { chmodSync, mkdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import type { Server } from 'node:net';
import { join } from 'node:path';
import { collectLeftovers } from '@nspawn/assembly';
import {
  type CgroupLayout,
  cgroupLayoutFromMountinfo,
  checkVarlinkParams,
  formatAddress,
  machineImageSocketPath,
  machineSocketPath,
  type NspawndPaths,
  nspawndPaths,
  readMachineStats,
  type VarlinkMethod,
} from '@nspawn/runtime';
import { type ImageBackend, imageMethods } from './images.js';
import { machineMethods } from './machine-api.js';
import { preparePidfds } from './pinned.js';
import { Registry } from './registry.js';
import { closeServers, listen, PeerCredentials } from './service.js';
import { Supervisor } from './supervision.js';
import { Transfers } from './transfers.js';
import { WEB_ACCESS_FILE, type WebConfig } from './web/config.js';
import type { WebServer } from './web/server.js';

export { EXIT_FORCE_RESTART, LOG_KEEP, LOG_MAX_BYTES } from './supervision.js';

export interface DaemonOptions {
  paths?: NspawndPaths;
  log?: (line: string) => void;
  images?: ImageBackend;
  /** how often machines whose leader is not our child are checked (ms) */
  pollMs?: number;
  /** serve the web view there (`--web`); its code is loaded only then */
  web?: WebConfig;
}

export class Daemon {
  readonly paths: NspawndPaths;
  private readonly log: (line: string) => void;
  private readonly images: ImageBackend | undefined;
  private readonly pollMs: number;
  private readonly registry: Registry;
  private readonly supervisor: Supervisor;
  private readonly creds: PeerCredentials;
  /** pull-raw, import-raw, import-fs, export-raw in progress (with an image store) */
  readonly transfers: Transfers | undefined;
  private servers: Server[] = [];
  private reaper: NodeJS.Timeout | undefined;
  private methods: Record<string, VarlinkMethod> = {};
  private readonly webConfig: WebConfig | undefined;
  /** the web view, when serving one */
  web: WebServer | undefined;

  constructor(opts: DaemonOptions = {}) {
    this.paths = opts.paths ?? nspawndPaths();
    this.log = opts.log ?? ((l) => void writeSync(2, `nspawnd: ${l}\n`));
    this.images = opts.images;
    this.pollMs = opts.pollMs ?? 1000;
    this.webConfig = opts.web;
    this.registry = new Registry(this.paths.state, this.log);
    this.supervisor = new Supervisor(this.paths, this.registry, this.log);
    this.creds = new PeerCredentials(this.log);
    if (this.images) this.transfers = new Transfers(this.paths.images, this.log);
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
    const methods = {
      ...machineMethods(this.registry, this.supervisor),
      ...(this.images ? imageMethods(this.images, (n) => this.registry.has(n)) : {}),
      ...(this.transfers ? this.transfers.methods() : {}),
    };
    this.methods = methods;
    this.servers = await listen(this.sockets(), methods, this.creds);
    try {
      await this.startWeb();
    } catch (e) {
      this.creds.close();
      await closeServers(this.servers, this.sockets());
      throw e;
    }
    this.supervisor.recover();
    this.registry.recover((name, r) => this.supervisor.scopeLeftBy(name, r.info.managed));
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
    this.reaper = setInterval(() => this.reap(), this.pollMs);
    this.supervisor.start();
    await this.supervisor.autostart();
  }

  /**
   * The web view with --web (its module is loaded only then: a bundle of its own), over the very methods the
   * sockets serve; without, a stale access file of an earlier nspawnd is removed (`nspawnctl web` then says so).
   */
  private async startWeb(): Promise<void> {
    const access = join(this.paths.runtime, WEB_ACCESS_FILE);
    if (!this.webConfig) {
      rmSync(access, { force: true });
      return;
    }
    const { startWeb } = await import('./web/server.js');
    let layout: CgroupLayout | undefined;
    this.web = await startWeb({
      config: this.webConfig,
      runtimeDir: this.paths.runtime,
      logsDir: this.paths.logs,
      imagesDir: this.paths.images,
      call: (method, params, more) => this.call(method, params, more),
      readStats: (name) => readMachineStats(name, { layout: (layout ??= cgroupLayoutFromMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'))) }),
      formatAddress,
      log: this.log,
    });
    this.log(`web view on ${this.web.url} (nspawnctl web prints its address with the token)`);
  }

  /**
   * Calls one of the methods the sockets serve, as a call on them would: the same parameter check, the same
   * handler; the replies (several when MORE), or the VarlinkError it throws.
   */
  async call(method: string, params: Record<string, unknown>, more = false): Promise<Array<Record<string, unknown>>> {
    const m = Object.hasOwn(this.methods, method) ? this.methods[method] : undefined;
    if (!m) throw new Error(`no method ${method}`);
    if (m.params) checkVarlinkParams(params, m.params);
    const replies: Array<Record<string, unknown>> = [];
    const last = await m.handler(params, { call: { method, parameters: params, ...(more ? { more: true } : {}) }, reply: (p) => void replies.push(p) });
    replies.push(last);
    return replies;
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
    await this.web?.close();
    this.web = undefined;
    this.creds.close();
    // transfers are cancelled: each removes what it wrote
    await this.transfers?.cancelAll();
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
