/**
 * The cgroup the reference runs in. systemd-nspawn 252 with --keep-unit splits the cgroup it is started in, in the
 * unified and name=systemd hierarchies: the container goes into payload/ below it, 252 itself into supervisor/, and
 * both stay after the end. Started from the test runner's cgroup (the hierarchies' roots when that is the root),
 * they would be left there, shared by every run on the machine; instead each test file's runs of the reference get
 * a cgroup of their own, NAME at the top of those hierarchies (as tools/systemd-host does for its host), made on
 * first use and removed after the file's tests (removeReferenceCgroup(), registered by ./reference-cgroup-setup.ts,
 * the vitest setup file of each package whose tests run the reference).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

/** systemd-nspawn 252, the reference the side-by-side tests run. */
export const SYSTEMD_NSPAWN = '/usr/bin/systemd-nspawn';

/** The mount points of the hierarchies systemd-nspawn --keep-unit works in: cgroup2 (unified) and name=systemd. */
export function keepUnitHierarchies(mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): string[] {
  const roots: string[] = [];
  for (const line of mountinfo.split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-');
    if (sep < 0) continue;
    const type = f[sep + 1];
    const opts = f[sep + 3] ?? '';
    const mp = f[4] ?? '';
    if (!mp.startsWith('/sys/fs/cgroup')) continue;
    if (type === 'cgroup2' || (type === 'cgroup' && opts.split(',').includes('name=systemd'))) roots.push(mp);
  }
  return roots;
}

/** rmdir of a cgroup and every directory below it, deepest first: only empty ones go (nothing is killed); throws on a populated one. */
export function removeCgroupTree(path: string): void {
  if (!existsSync(path)) return;
  for (const e of readdirSync(path, { withFileTypes: true })) if (e.isDirectory()) removeCgroupTree(join(path, e.name));
  rmdirSync(path);
}

let current: { name: string; dirs: string[] } | undefined;

/** The reference cgroup of this test file: made now if it is not yet. */
function referenceCgroup(): { name: string; dirs: string[] } {
  if (!current) {
    const name = `nspawn-ref-${randomBytes(4).toString('hex')}`;
    const dirs = keepUnitHierarchies().map((root) => join(root, name));
    if (dirs.length === 0) throw new Error('no cgroup2 or name=systemd hierarchy is mounted: systemd-nspawn --keep-unit needs one');
    current = { name, dirs };
    for (const d of dirs) mkdirSync(d);
  }
  return current;
}

/**
 * The command and arguments that run systemd-nspawn ARGS in the reference cgroup: a shell that moves itself there,
 * then exec()s systemd-nspawn (same PID: signals and waits reach 252 itself). More arguments can be appended.
 */
export function referenceCommand(args: readonly string[] = []): [string, string[]] {
  const enter = referenceCgroup().dirs.map((d) => `echo $$ > '${d}/cgroup.procs'`).join(' && ');
  return ['/bin/sh', ['-c', `${enter} && exec "$@"`, 'sh', SYSTEMD_NSPAWN, ...args]];
}

/** The reference cgroup's path as /proc/PID/cgroup shows it ("/nspawn-ref-XXXXXXXX"), in the hierarchies keepUnitHierarchies() lists. */
export function referenceCgroupPath(): string {
  return `/${referenceCgroup().name}`;
}

/**
 * Removes the reference cgroup, if this file made one: rmdir of it and of what 252 made below it (payload/,
 * supervisor/, and a booted container's own cgroups), deepest first, waiting up to TIMEOUTMS for processes to leave.
 * Throws, naming what is left, when some directory still has processes (nothing is killed).
 */
export async function removeReferenceCgroup(timeoutMs = 5000): Promise<void> {
  if (!current) return;
  const { dirs } = current;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      for (const d of dirs) removeCgroupTree(d);
      current = undefined;
      return;
    } catch (e) {
      if (Date.now() >= deadline) throw new Error(`the reference's cgroup is not empty: ${(e as Error).message}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/**
 * For a program that runs the reference many times (the benchmarks): this process moves into the reference cgroup,
 * so that what it starts, the reference included, starts there without a shell in front of each run. Returns what
 * undoes it: the process goes back to the cgroups it came from and the reference cgroup is removed (synchronous, for
 * an exit handler; throws when something still runs in it).
 */
export function enterReferenceCgroup(): () => void {
  const own = readFileSync('/proc/self/cgroup', 'utf8').split('\n');
  const mountinfo = readFileSync('/proc/self/mountinfo', 'utf8');
  const from = (root: string) => {
    const unified = !mountinfo.split('\n').some((l) => l.split(' ')[4] === root && / - cgroup /.test(l));
    const line = own.find((l) => (unified ? l.startsWith('0::') : /^\d+:name=systemd:/.test(l)));
    if (!line) throw new Error(`this process has no cgroup in ${root}`);
    return join(root, line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1));
  };
  const back = keepUnitHierarchies(mountinfo).map(from);
  const { dirs } = referenceCgroup();
  for (const d of dirs) writeFileSync(join(d, 'cgroup.procs'), String(process.pid));
  return () => {
    for (const b of back) writeFileSync(join(b, 'cgroup.procs'), String(process.pid));
    for (const d of dirs) removeCgroupTree(d);
    current = undefined;
  };
}
