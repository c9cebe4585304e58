/**
 * Running systemd-nspawn and nspawn side by side from tests: asynchronous runs (execa) with a timeout, so that a
 * container that takes seconds does not block the vitest worker; temp dirs that are removed even after a failure,
 * and checks that no mount is left behind in the host.
 */
import { execa, execaSync } from 'execa';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mountsUnder, referenceCommand, SYSTEMD_NSPAWN } from '@nspawn/test-kit';

export const REPO = resolve(fileURLToPath(new URL('../../../..', import.meta.url)));
export const NSPAWN_BIN = join(REPO, 'apps/cli/bin/nspawn');
export { referenceCgroupPath, SYSTEMD_NSPAWN } from '@nspawn/test-kit';

/** Flags both tools get in front of everything else: no machined, no scope unit. */
export const COMMON_FLAGS = ['--register=no', '--keep-unit'];

/** Throws (never skips) when the test cannot run here: these tests need root and systemd-nspawn. */
export function requireRootAndSystemdNspawn(): void {
  if (process.getuid?.() !== 0) throw new Error('this test must run as root: it creates namespaces and mounts');
  if (!existsSync(SYSTEMD_NSPAWN))
    throw new Error(`${SYSTEMD_NSPAWN} is missing: install systemd-container (the comparison needs the real systemd-nspawn)`);
  const v = execaSync(process.execPath, [NSPAWN_BIN, '--version'], { timeout: 20000, reject: false });
  if (v.exitCode !== 0) throw new Error(`${NSPAWN_BIN} --version failed (run 'pnpm build' in ${REPO}): ${v.stderr || v.shortMessage}`);
}

export type Tool = 'systemd-nspawn' | 'nspawn';
export const TOOLS: readonly Tool[] = ['systemd-nspawn', 'nspawn'];

/**
 * The command and first arguments that run TOOL (the rest follow): systemd-nspawn in the test file's reference
 * cgroup (@nspawn/test-kit's referenceCommand(): 252's payload/ and supervisor/ go there, not below the runner's
 * cgroup, and are removed after the file), nspawn through node.
 */
export function toolCommand(tool: Tool): [string, string[]] {
  return tool === 'systemd-nspawn' ? referenceCommand() : [process.execPath, [NSPAWN_BIN]];
}

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

/** systemd-nspawn 252's stderr lines that are not about the container (its own bugs on this machine). */
export const isSystemdNoise = (line: string): boolean =>
  line.startsWith('Attempted to remove disk file system') || line.startsWith('Short read while reading cgroup mode');

/** Runs one tool with ARGS (after COMMON_FLAGS) and waits for it; stdin is empty, stdout/stderr are captured. */
export async function runTool(tool: Tool, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<ToolRun> {
  const [cmd, pre] = toolCommand(tool);
  const argv = [...pre, ...COMMON_FLAGS, ...args];
  const t0 = performance.now();
  const timeout = opts.timeoutMs ?? 20000;
  const r = await execa(cmd, argv, {
    input: '',
    env: opts.env ?? TOOL_ENV,
    extendEnv: false,
    timeout,
    killSignal: 'SIGKILL',
    maxBuffer: 16 * 1024 * 1024,
    reject: false,
    stripFinalNewline: false,
  });
  // not started at all (ENOENT, EACCES): an error; an exit status, a signal or the timeout is a result
  if (r.failed && r.exitCode === undefined && r.signal === undefined && !r.timedOut) throw new Error(r.message);
  return {
    tool,
    argv: [tool, ...COMMON_FLAGS, ...args],
    status: r.exitCode ?? null,
    signal: (r.signal as NodeJS.Signals | undefined) ?? null,
    stdout: String(r.stdout ?? ''),
    stderr: String(r.stderr ?? '') + (r.timedOut ? `\n[test: killed after ${timeout} ms]` : ''),
    ms: performance.now() - t0,
  };
}

export const runSystemdNspawn = (args: string[], opts?: { timeoutMs?: number }) => runTool('systemd-nspawn', args, opts);
export const runNspawn = (args: string[], opts?: { timeoutMs?: number }) => runTool('nspawn', args, opts);

/** Mount points at or below PATH (the host's), in mountinfo's order: @nspawn/test-kit's. */
export { mountsUnder, treeListing } from '@nspawn/test-kit';

/**
 * Removes DIR recursively, but never through a mount: mounts left under it are detached first (deepest first) and
 * returned, for the caller to report; when some cannot be detached, DIR stays.
 */
export function removeDir(dir: string): string[] {
  const left = mountsUnder(dir);
  for (const mp of [...left].sort((a, b) => b.length - a.length)) execaSync('umount', ['--lazy', mp], { stdio: 'ignore', reject: false });
  if (mountsUnder(dir).length === 0) rmSync(dir, { recursive: true, force: true });
  return left;
}

/** A temp dir that remove() deletes (see removeDir), whatever happened in it. */
export function makeTempDir(prefix: string, base = '/var/tmp'): { dir: string; remove: () => string[] } {
  const dir = mkdtempSync(join(base, prefix));
  return { dir, remove: () => removeDir(dir) };
}

/**
 * What a start of machine MACHINE on DIR (a tree, or a bundle holding one) leaves on the host: mounts under DIR,
 * nspawn's run record, a cgroup of the machine in machine.slice of any hierarchy. Expected after a run: none.
 */
export function startLeftovers(dir: string, machine: string): string[] {
  const out = mountsUnder(dir).map((m) => `mount ${m}`);
  if (existsSync(`/run/nspawn/runs/${machine}.lock`)) out.push('run record');
  for (const h of readdirSync('/sys/fs/cgroup')) {
    const slice = join('/sys/fs/cgroup', h, 'machine.slice');
    if (existsSync(slice)) for (const d of readdirSync(slice)) if (d.includes(machine)) out.push(`cgroup ${slice}/${d}`);
  }
  return out;
}
