/**
 * Limits the kernel puts on a container start, checked before anything is made (no cgroup, snapshot, overlay, lock
 * or link), so that a start the kernel would refuse halfway is refused up front with one line:
 *   - the payload's execve(): its arguments and environment must fit in what bprm_stack_limits() allows with the
 *     stack limit the payload gets (a quarter of RLIMIT_STACK, at most 6 MiB, at least 32 pages; less the pointers),
 *     and no single string may be longer than MAX_ARG_STRLEN (32 pages);
 *   - mounts: a mount namespace holds at most /proc/sys/fs/mount-max mounts (the container's starts as a copy of the
 *     host's), and each host bind source is an open descriptor of the helper until the container attaches it.
 * native/plan-decode.c checks the execve() size the same way as a second line (a plan from elsewhere).
 */
import { readFileSync } from 'node:fs';
import { type CustomMount, RLIMIT_NUMBERS } from '@nspawn/settings';
import type { HelperRlimit } from './protocol.js';

const PAGE = 4096;
/** MAX_ARG_STRLEN: one argument or variable, its NUL included */
const MAX_ARG_STRLEN = 32 * PAGE;
/** the program's path, counted as the kernel copies it too (and a fallback's argv[0]) */
const PATH_ROOM = 4096;

/** What execve() takes in strings and their pointers with the stack's soft limit STACK (bprm_stack_limits()). */
export function execArgsLimit(stack: bigint | 'infinity'): number {
  let limit = 6 * 1024 * 1024; // _STK_LIM / 4 * 3
  if (stack !== 'infinity' && stack / 4n < BigInt(limit)) limit = Number(stack / 4n);
  return Math.max(limit, 32 * PAGE); // ARG_MAX
}

/**
 * Why the payload's execve() of ARGV (or, with FALLBACK, of a fallback program with ARGV as its arguments after
 * argv[0]) and ENV would fail with E2BIG under the stack limit STACK; undefined when it fits.
 */
export function execSizeError(argv: readonly string[], env: readonly string[], stack: bigint | 'infinity', fallback = false): string | undefined {
  let args = 0;
  let vars = 0;
  for (let i = 0; i < argv.length; i++) {
    const n = Buffer.byteLength(argv[i]!) + 1;
    if (n > MAX_ARG_STRLEN)
      return `Argument ${i + 1} of the container's command line is ${n - 1} bytes long, more than execve() takes in one (${MAX_ARG_STRLEN - 1}): Argument list too long.`;
    args += n;
  }
  for (const e of env) {
    const n = Buffer.byteLength(e) + 1;
    if (n > MAX_ARG_STRLEN)
      return `A variable of the container's environment (${e.slice(0, Math.min(64, e.includes('=') ? e.indexOf('=') : e.length))}) is ${n - 1} bytes long, more than execve() takes in one (${MAX_ARG_STRLEN - 1}): Argument list too long.`;
    vars += n;
  }
  const nArgs = fallback ? argv.length + 1 : argv.length;
  // the strings, the program's path, and a pointer for each string and one more
  const used = args + vars + PATH_ROOM + (fallback ? PATH_ROOM : 0) + (nArgs + env.length + 1) * 8;
  const limit = execArgsLimit(stack);
  if (used <= limit) return undefined;
  return `The container's command line and environment (${nArgs} arguments, ${env.length} variables: ${used} bytes with their pointers) are more than the ${limit} bytes execve() takes with a stack limit of ${stack === 'infinity' ? 'infinity' : String(stack)}: Argument list too long.`;
}

/** The host's side of the mount limits (read only for a start with many mounts). */
export interface MountLimitFacts {
  /** /proc/sys/fs/mount-max, undefined when unknown */
  mountMax(): number | undefined;
  /** the mount points of our mount namespace (the container's starts as a copy of it) */
  mountPoints(): string[];
  /** the hard limit of open files (RLIMIT_NOFILE) of this process, which the helper inherits; undefined: unlimited */
  openFilesHard(): number | undefined;
}

const readOr = <T>(f: () => T, d: T): T => {
  try {
    return f();
  } catch {
    return d;
  }
};

export const nodeMountLimitFacts: MountLimitFacts = {
  mountMax: () => readOr(() => Number(readFileSync('/proc/sys/fs/mount-max', 'utf8').trim()) || undefined, undefined),
  mountPoints: () =>
    readOr(
      () =>
        readFileSync('/proc/self/mountinfo', 'utf8')
          .split('\n')
          .filter((l) => l !== '')
          .map((l) => (l.split(' ')[4] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))),
      [],
    ),
  openFilesHard: () =>
    readOr(() => {
      const line = readFileSync('/proc/self/limits', 'utf8')
        .split('\n')
        .find((l) => l.startsWith('Max open files'));
      const hard = line?.trim().split(/\s+/)[4];
      return hard === undefined || hard === 'unlimited' ? undefined : Number(hard);
    }, undefined),
};

/** the mounts the API file systems and the rest of a plan make, besides the user's (a generous count) */
const PLAN_MOUNTS = 96;
/** below this many custom mounts no start can come near the limits: nothing is read */
const FEW_MOUNTS = 64;

/** What of a container's configuration the kernel's limits concern (a ContainerConfig is one). */
export interface LimitedStart {
  directory: string;
  startMode: 'pid1' | 'pid2' | 'boot';
  /** the command, or with -b init's arguments */
  parameters: readonly string[];
  customMounts: readonly CustomMount[];
}

/** Why the container's mounts cannot all be made, or undefined. */
export function mountLimitError(cfg: Pick<LimitedStart, 'customMounts' | 'directory'>, facts: MountLimitFacts = nodeMountLimitFacts): string | undefined {
  const custom = cfg.customMounts;
  if (custom.length < FEW_MOUNTS) return undefined;
  const binds = custom.filter((m) => m.type === 'bind' && m.source !== '' && !m.sourceInRoot).length + custom.filter((m) => m.type === 'inaccessible').length;
  const hard = facts.openFilesHard();
  if (hard !== undefined && binds + 64 > hard)
    return `The container's ${binds} bind mounts need ${binds + 64} open files, more than this process's hard limit of ${hard} (ulimit -Hn).`;
  const max = facts.mountMax();
  if (max === undefined) return undefined;
  const points = facts.mountPoints();
  const under = (p: string) => points.filter((m) => m === p || m.startsWith(p.endsWith('/') ? p : `${p}/`)).length;
  let count = points.length + under(cfg.directory) + PLAN_MOUNTS;
  for (const m of custom) count += 1 + (m.type === 'bind' && m.recursive && m.source !== '' && !m.sourceInRoot ? under(m.source) : 0);
  if (count <= max) return undefined;
  return `The container's ${custom.length} mounts and the ${points.length} of the host are more than the kernel allows in a mount namespace (/proc/sys/fs/mount-max: ${max}).`;
}

/**
 * Why the kernel would refuse start CFG halfway, or undefined: its payload with environment ENV and resource limits
 * RLIMITS (buildEnvironment() and buildRlimits() of plan.ts), its mounts. Ask before anything is made, and refuse
 * with the answer (one line).
 */
export function kernelLimitError(cfg: LimitedStart, env: readonly string[], rlimits: readonly HelperRlimit[], facts: MountLimitFacts = nodeMountLimitFacts): string | undefined {
  const stack = rlimits.find((r) => r.resource === RLIMIT_NUMBERS.STACK)?.soft ?? 'infinity';
  // -b: init's arguments after a fallback's argv[0]; no command: a fallback shell
  const fallback = cfg.startMode === 'boot' || cfg.parameters.length === 0;
  return execSizeError(cfg.parameters, env, stack, fallback) ?? mountLimitError(cfg, facts);
}
