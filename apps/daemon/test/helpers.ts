/**
 * A private nspawnd per test file: its own runtime, config, log and machines directories under a temp dir (so a
 * real nspawnd on the host, and other engineers' tests, are not touched), machine names prefixed dm-.
 */
import { execa, execaSync, type ResultPromise } from 'execa';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
export const NSPAWND = join(REPO, 'apps/daemon/bin/nspawnd');
export const NSPAWNCTL = join(REPO, 'apps/cli/bin/nspawnctl');
export const NSPAWN = join(REPO, 'apps/cli/bin/nspawn');

export function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new Error('these tests must run as root: they start containers');
  for (const b of [NSPAWND, NSPAWNCTL]) {
    const dist = join(b, '../../dist', `${b.split('/').pop()}.cjs`);
    if (!existsSync(dist)) throw new Error(`${dist} is missing: run 'pnpm build' first`);
  }
}

/** nspawnctl's exit status (null when a signal ended it) and output. */
export interface CtlResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export class TestDaemon {
  readonly base: string;
  readonly env: NodeJS.ProcessEnv;
  proc: ResultPromise<{ stdio: ['ignore', 'pipe', 'pipe']; buffer: false; reject: false }> | undefined;
  output = '';

  constructor(prefix = 'dm-') {
    this.base = mkdtempSync(`/tmp/${prefix}d-`);
    for (const d of ['run', 'etc', 'log', 'machines']) mkdirSync(join(this.base, d));
    this.env = {
      ...process.env,
      NSPAWND_RUNTIME_DIR: join(this.base, 'run'),
      NSPAWND_CONFIG_DIR: join(this.base, 'etc'),
      NSPAWND_LOG_DIR: join(this.base, 'log'),
      NSPAWND_MACHINES_DIR: join(this.base, 'machines'),
    };
  }

  get machines(): string {
    return join(this.base, 'machines');
  }

  get socket(): string {
    return join(this.base, 'run', 'io.systemd.Machine');
  }

  /** Starts nspawnd and waits until it answers. */
  async start(extraEnv: NodeJS.ProcessEnv = {}): Promise<void> {
    this.output = '';
    const p = execa(process.execPath, [NSPAWND], {
      env: { ...this.env, ...extraEnv },
      extendEnv: false,
      stdio: ['ignore', 'pipe', 'pipe'],
      buffer: false,
      reject: false,
      forceKillAfterDelay: false,
    });
    this.proc = p;
    p.stdout!.on('data', (d: Buffer) => (this.output += d.toString()));
    p.stderr!.on('data', (d: Buffer) => (this.output += d.toString()));
    const deadline = Date.now() + 15000;
    while (!this.output.includes('listening on')) {
      if (p.nodeChildProcess.exitCode !== null) throw new Error(`nspawnd exited: ${this.output}`);
      if (Date.now() > deadline) throw new Error(`nspawnd did not start: ${this.output}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Stops it with SIGTERM (or kills it with SIGKILL): its containers keep running. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const p = this.proc;
    if (!p || p.nodeChildProcess.exitCode !== null || p.nodeChildProcess.signalCode !== null) return;
    p.kill(signal);
    await p;
    this.proc = undefined;
  }

  ctl(args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {}): CtlResult {
    const r = execaSync(NSPAWNCTL, [...args], {
      env: { ...this.env, ...opts.env },
      extendEnv: false,
      input: opts.input ?? '',
      timeout: opts.timeout ?? 30000,
      reject: false,
      stripFinalNewline: false,
    });
    return { status: r.exitCode ?? null, stdout: r.stdout, stderr: r.stderr };
  }

  /** Like ctl() but asynchronous (for a daemon in the same event loop... or long runs). */
  async ctlAsync(args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {}): Promise<CtlResult> {
    const r = await execa(NSPAWNCTL, [...args], {
      env: { ...this.env, ...opts.env },
      extendEnv: false,
      input: opts.input ?? '',
      timeout: opts.timeout ?? 30000,
      killSignal: 'SIGKILL',
      reject: false,
      stripFinalNewline: false,
    });
    return { status: r.exitCode ?? null, stdout: r.stdout, stderr: r.stderr };
  }

  /** machine names nspawnd lists */
  list(): string[] {
    const r = this.ctl(['list', '--no-legend']);
    if (r.status !== 0) throw new Error(`list failed: ${r.stderr}`);
    return r.stdout
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => l.split(/\s+/)[0]!);
  }

  /** Terminates every machine, stops the daemon, removes the directory. */
  async cleanup(): Promise<void> {
    if (!this.proc) {
      try {
        await this.start();
      } catch {
        // state may be gone
      }
    }
    for (const name of this.proc ? safeList(this) : []) this.ctl(['terminate', name]);
    await waitFor(() => (this.proc ? safeList(this).length === 0 : true), 10000).catch(() => {});
    await this.stop();
    // only our temp tree; images are plain directories with no mounts left
    for (const m of readdirSync(join(this.base, 'machines'))) await execa('rm', ['-rf', '--one-file-system', join(this.base, 'machines', m)]);
    rmSync(this.base, { recursive: true, force: true });
  }
}

function safeList(d: TestDaemon): string[] {
  try {
    return d.list();
  } catch {
    return [];
  }
}

export async function waitFor(cond: () => boolean, ms = 10000, step = 50): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, step));
  }
}

export function makeBusybox(dir: string): void {
  execaSync(join(REPO, 'scripts/make-busybox-tree.sh'), [dir], { stdio: ['ignore', 'ignore', 'inherit'] });
}

/** Asynchronous: a Debian tree takes seconds, and a synchronous spawn would block the vitest worker. */
export async function makeDebian(dir: string): Promise<void> {
  await execa(join(REPO, 'scripts/make-debian-tree.sh'), [dir], { stdio: ['ignore', 'ignore', 'inherit'] });
}
