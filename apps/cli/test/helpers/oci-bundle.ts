/**
 * --oci-bundle= runs side by side with systemd-nspawn 252: bundles (a copy of a busybox rootfs named ROOT beside a
 * config.json) in a temp dir, one fresh bundle per tool and run, what each run printed made generic (the bundle's
 * path as BUNDLE), and a check that a run left nothing behind (mounts under the bundle, nspawn's run record, a cgroup
 * of the machine). Plain -D runs on a fresh copy of the same rootfs too (runDirectory(), bothDirectory()).
 */
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { makeBusyboxTree } from './busybox-tree.js';
import { makeTempDir, requireRootAndSystemdNspawn, runTool, startLeftovers, type Tool, TOOL_ENV, TOOLS } from './containers.js';

/** What one run printed: its exit status, stdout's lines and stderr's (noise of 252 on this host left out). */
export interface Seen {
  status: number | null;
  lines: string[];
  stderr: string[];
}

/**
 * a tool's stderr as lines, without the empty ones and 252's noise on this host: its warnings about the tree, and on a
 * hybrid cgroup host, once a -U run of 252 went through the test's reference cgroup, its compat (name=systemd)
 * payload/ it can no longer attach to
 */
export const stderrLines = (stderr: string): string[] =>
  stderr
    .split('\n')
    .filter(
      (l) =>
        l !== '' &&
        !l.startsWith('Attempted to remove disk file system') &&
        !l.startsWith('Short read while reading cgroup mode') &&
        !/^Failed to attach \d+ to compat systemd cgroup \/nspawn-ref-[^/]+\/payload: /.test(l),
    );

export class OciBundleRuns {
  /** the temp dir everything is made in */
  dir = '';
  /** the busybox rootfs each bundle gets a copy of (tests may add files to it before their first run) */
  template = '';
  private tmp?: ReturnType<typeof makeTempDir>;
  private runNo = 0;

  /** ROOT: root.path's name, the machine's name under both tools (unique to the test file); PREFIX: the temp dir's */
  constructor(
    readonly root: string,
    private readonly prefix: string,
  ) {}

  /** beforeAll(): throws (never skips) without root or systemd-nspawn; makes the temp dir and the rootfs */
  start(): void {
    requireRootAndSystemdNspawn();
    this.tmp = makeTempDir(this.prefix);
    this.dir = this.tmp.dir;
    this.template = makeBusyboxTree(join(this.dir, 'template'), { probe: false });
  }

  /** afterAll(): removes the temp dir; returns the mounts that were still under it (expected: none) */
  finish(): string[] {
    return this.tmp?.remove() ?? [];
  }

  /** A fresh copy of the rootfs at DIR/ROOT, with DIR/hostdir/file beside it: DIR (for a bundle or a -D run). */
  makeCopy(tool: Tool): string {
    const dir = join(this.dir, `run${++this.runNo}-${tool}`);
    cpSync(this.template, join(dir, this.root), { recursive: true, verbatimSymlinks: true });
    mkdirSync(join(dir, 'hostdir'));
    writeFileSync(join(dir, 'hostdir/file'), 'from the host\n');
    return dir;
  }

  /** A fresh copy of the rootfs with CONFIG (an object, or the file's text) beside it, and hostdir/file: the bundle. */
  makeBundle(tool: Tool, config: object | string): string {
    const bundle = this.makeCopy(tool);
    writeFileSync(join(bundle, 'config.json'), typeof config === 'string' ? config : JSON.stringify(config, null, 2));
    return bundle;
  }

  /** what a start leaves on the host: mounts under DIR, nspawn's run record, a cgroup of the machine (ROOT) */
  leftovers(dir: string): string[] {
    return startLeftovers(dir, this.root);
  }

  /** TOOL -q --oci-bundle=BUNDLE ARGS on a fresh bundle of CONFIG (ENV added to TOOL_ENV); fails the test when it left something behind */
  async run(tool: Tool, config: object | string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Seen> {
    const bundle = this.makeBundle(tool, config);
    return this.runIn(tool, bundle, ['-q', `--oci-bundle=${bundle}`, ...args], env);
  }

  /** TOOL -q -D DIR/ROOT ARGS on a fresh copy of the rootfs (no bundle; ENV added to TOOL_ENV), checked as run() checks it */
  async runDirectory(tool: Tool, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Seen> {
    const dir = this.makeCopy(tool);
    return this.runIn(tool, dir, ['-q', '-D', join(dir, this.root), ...args], env);
  }

  /** the same ARGS and ENV under both tools, each with -D on a copy of its own */
  async bothDirectory(args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Record<Tool, Seen>> {
    const seen = {} as Record<Tool, Seen>;
    for (const tool of TOOLS) seen[tool] = await this.runDirectory(tool, args, env);
    return seen;
  }

  /** runs TOOL ARGS, checks what was left under DIR, and returns its output with DIR written BUNDLE */
  private async runIn(tool: Tool, dir: string, args: string[], env: NodeJS.ProcessEnv): Promise<Seen> {
    const r = await runTool(tool, args, { env: { ...TOOL_ENV, ...env } });
    expect(this.leftovers(dir), `${tool} left something behind`).toEqual([]);
    const generic = (s: string) => s.split(dir).join('BUNDLE');
    return {
      status: r.status,
      lines: r.stdout.replace(/\r\n/g, '\n').split('\n').filter((l) => l !== '').map(generic),
      stderr: stderrLines(r.stderr).map((l) => generic(l).replace(/ \([A-Z]+\)$/, '')),
    };
  }

  /** the same CONFIG, ARGS and ENV under both tools, each on a bundle of its own */
  async both(config: object | string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Record<Tool, Seen>> {
    const seen = {} as Record<Tool, Seen>;
    for (const tool of TOOLS) seen[tool] = await this.run(tool, config, args, env);
    return seen;
  }
}
