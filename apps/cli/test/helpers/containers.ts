/**
 * Running systemd-nspawn and nspawn side by side from tests: synchronous runs with a timeout, temp dirs that are
 * removed even after a failure, and checks that no mount is left behind in the host.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(fileURLToPath(new URL('../../../..', import.meta.url)));
export const NSPAWN_BIN = join(REPO, 'apps/cli/bin/nspawn');
export const SYSTEMD_NSPAWN = '/usr/bin/systemd-nspawn';

/** Flags both tools get in front of everything else: no machined, no scope unit. */
export const COMMON_FLAGS = ['--register=no', '--keep-unit'];

/** Throws (never skips) when the test cannot run here: these tests need root and systemd-nspawn. */
export function requireRootAndSystemdNspawn(): void {
  if (process.getuid?.() !== 0) throw new Error('this test must run as root: it creates namespaces and mounts');
  if (!existsSync(SYSTEMD_NSPAWN))
    throw new Error(`${SYSTEMD_NSPAWN} is missing: install systemd-container (the comparison needs the real systemd-nspawn)`);
  const v = spawnSync(process.execPath, [NSPAWN_BIN, '--version'], { encoding: 'utf8', timeout: 20000 });
  if (v.status !== 0) throw new Error(`${NSPAWN_BIN} --version failed (run 'pnpm build' in ${REPO}): ${v.stderr || v.error?.message || ''}`);
}

export type Tool = 'systemd-nspawn' | 'nspawn';
export const TOOLS: readonly Tool[] = ['systemd-nspawn', 'nspawn'];

export interface ToolRun {
  tool: Tool;
  argv: string[];
  /** exit status; null when killed (then `signal` says by what) */
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** The environment both tools run with: fixed, so the container's environment does not depend on the caller's. */
export const TOOL_ENV: NodeJS.ProcessEnv = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', TERM: 'xterm-256color' };

/** Runs one tool with ARGS (after COMMON_FLAGS) and waits for it; stdin is empty, stdout/stderr are captured. */
export function runTool(tool: Tool, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): ToolRun {
  const [cmd, pre] = tool === 'systemd-nspawn' ? [SYSTEMD_NSPAWN, []] : [process.execPath, [NSPAWN_BIN]];
  const argv = [...pre, ...COMMON_FLAGS, ...args];
  const t0 = performance.now();
  const r = spawnSync(cmd, argv, {
    input: '',
    encoding: 'utf8',
    env: opts.env ?? TOOL_ENV,
    timeout: opts.timeoutMs ?? 20000,
    killSignal: 'SIGKILL',
    maxBuffer: 16 * 1024 * 1024,
  });
  if (r.error && (r.error as NodeJS.ErrnoException).code !== 'ETIMEDOUT') throw r.error;
  return {
    tool,
    argv: [tool, ...COMMON_FLAGS, ...args],
    status: r.status,
    signal: r.signal,
    stdout: r.stdout ?? '',
    stderr: (r.stderr ?? '') + (r.error ? `\n[test: ${r.error.message}]` : ''),
    ms: performance.now() - t0,
  };
}

export const runSystemdNspawn = (args: string[], opts?: { timeoutMs?: number }) => runTool('systemd-nspawn', args, opts);
export const runNspawn = (args: string[], opts?: { timeoutMs?: number }) => runTool('nspawn', args, opts);

/** Mount points of this process's mount namespace (the host's) at or below PATH. */
export function mountsUnder(path: string, mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): string[] {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return mountinfo
    .split('\n')
    .map((l) => unescape(l.split(' ')[4] ?? ''))
    .filter((mp) => mp === path || mp.startsWith(`${path}/`));
}

/**
 * Removes DIR recursively, but never through a mount: mounts left under it are detached first (deepest first) and
 * returned, for the caller to report; when some cannot be detached, DIR stays.
 */
export function removeDir(dir: string): string[] {
  const left = mountsUnder(dir);
  for (const mp of [...left].sort((a, b) => b.length - a.length)) spawnSync('umount', ['--lazy', mp], { stdio: 'ignore' });
  if (mountsUnder(dir).length === 0) rmSync(dir, { recursive: true, force: true });
  return left;
}

/** A temp dir that remove() deletes (see removeDir), whatever happened in it. */
export function makeTempDir(prefix: string, base = '/var/tmp'): { dir: string; remove: () => string[] } {
  const dir = mkdtempSync(join(base, prefix));
  return { dir, remove: () => removeDir(dir) };
}
