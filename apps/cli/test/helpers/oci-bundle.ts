/**
 * --oci-bundle= runs side by side with systemd-nspawn 252: bundles (a copy of a busybox rootfs named ROOT beside a
 * config.json) in a temp dir, one fresh bundle per tool and run, what each run printed made generic (the bundle's
 * path as BUNDLE), and a check that a run left nothing behind (mounts under the bundle, nspawn's run record, a cgroup
 * of the machine).
 */
import { cpSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { makeBusyboxTree } from './busybox-tree.js';
import { makeTempDir, mountsUnder, requireRootAndSystemdNspawn, runTool, type Tool, TOOL_ENV, TOOLS } from './containers.js';

/** What one run printed: its exit status, stdout's lines and stderr's (noise of 252 on this host left out). */
export interface Seen {
  status: number | null;
  lines: string[];
  stderr: string[];
}

/** a tool's stderr as lines, without the empty ones and 252's noise on this host (its warnings about the tree) */
export const stderrLines = (stderr: string): string[] =>
  stderr.split('\n').filter((l) => l !== '' && !l.startsWith('Attempted to remove disk file system') && !l.startsWith('Short read while reading cgroup mode'));

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

  /** A fresh copy of the rootfs with CONFIG (an object, or the file's text) beside it, and hostdir/file: the bundle. */
  makeBundle(tool: Tool, config: object | string): string {
    const bundle = join(this.dir, `run${++this.runNo}-${tool}`);
    cpSync(this.template, join(bundle, this.root), { recursive: true, verbatimSymlinks: true });
    mkdirSync(join(bundle, 'hostdir'));
    writeFileSync(join(bundle, 'hostdir/file'), 'from the host\n');
    writeFileSync(join(bundle, 'config.json'), typeof config === 'string' ? config : JSON.stringify(config, null, 2));
    return bundle;
  }

  /** what a start leaves on the host: mounts under the bundle, nspawn's run record, a cgroup of the machine */
  leftovers(bundle: string): string[] {
    const out = mountsUnder(bundle).map((m) => `mount ${m}`);
    if (existsSync(`/run/nspawn/runs/${this.root}.lock`)) out.push('run record');
    for (const h of readdirSync('/sys/fs/cgroup')) {
      const slice = join('/sys/fs/cgroup', h, 'machine.slice');
      if (existsSync(slice)) for (const d of readdirSync(slice)) if (d.includes(this.root)) out.push(`cgroup ${slice}/${d}`);
    }
    return out;
  }

  /** TOOL -q --oci-bundle=BUNDLE ARGS on a fresh bundle of CONFIG; fails the test when it left something behind */
  async run(tool: Tool, config: object | string, args: string[] = []): Promise<Seen> {
    const bundle = this.makeBundle(tool, config);
    const r = await runTool(tool, ['-q', `--oci-bundle=${bundle}`, ...args], { env: TOOL_ENV });
    expect(this.leftovers(bundle), `${tool} left something behind`).toEqual([]);
    const generic = (s: string) => s.split(bundle).join('BUNDLE');
    return {
      status: r.status,
      lines: r.stdout.replace(/\r\n/g, '\n').split('\n').filter((l) => l !== '').map(generic),
      stderr: stderrLines(r.stderr).map((l) => generic(l).replace(/ \([A-Z]+\)$/, '')),
    };
  }

  /** the same CONFIG and ARGS under both tools, each on a bundle of its own */
  async both(config: object | string, args: string[] = []): Promise<Record<Tool, Seen>> {
    const seen = {} as Record<Tool, Seen>;
    for (const tool of TOOLS) seen[tool] = await this.run(tool, config, args);
    return seen;
  }
}
