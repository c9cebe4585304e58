/**
 * The host side of the escape battery (fixtures/escape-probe.c), shared by test/escape.test.ts (nspawn beside
 * systemd-nspawn) and test/oci-escape.test.ts (nspawn-oci beside runc): the probe compiled statically, a marker file
 * outside every tree, a host file open on fd 9 (no runtime may pass it on), a host `sleep` the probe tries to kill,
 * the device of the file system the trees live on, and the host's state (hostname, core_pattern, API mounts) that
 * every run must leave as it was.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { execaSync } from 'execa';
import { closeSync, existsSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTempDir } from './containers.js';

export const PROBE_SOURCE = fileURLToPath(new URL('../fixtures/escape-probe.c', import.meta.url));
/** One line of the probe's report: attempt, then ok or the errno's name. */
export const ESCAPE_RESULT = /^([a-z0-9-]+): (ok|E[A-Z0-9]+)$/;

export interface HostState {
  hostname: string;
  corePattern: string;
  /** the host's API mounts: mount point, options, fs type, super options */
  apiMounts: string[];
}

/** What the host looks like to the battery; the runtimes' own state directories are left out. */
export function hostState(): HostState {
  const apiMounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const f = l.split(' ');
      const sep = f.indexOf('-', 6);
      return `${f[4]} ${f[5]} ${f[sep + 1]} ${f[sep + 3]}`;
    })
    .filter((l) => /^\/(proc|sys|dev|run)?(\/|\s)/.test(l) && !l.startsWith('/run/systemd/nspawn') && !l.startsWith('/run/netns'))
    .sort();
  return { hostname: readFileSync('/proc/sys/kernel/hostname', 'utf8'), corePattern: readFileSync('/proc/sys/kernel/core_pattern', 'utf8'), apiMounts };
}

/** The probe's report lines as attempt -> result. */
export function escapeResults(lines: string[]): Map<string, string> {
  const res = new Map<string, string>();
  for (const l of lines) {
    const x = ESCAPE_RESULT.exec(l);
    if (x) res.set(x[1]!, x[2]!);
  }
  return res;
}

export interface EscapeHost {
  base: ReturnType<typeof makeTempDir>;
  /** the compiled probe, in base.dir */
  probe: string;
  /** a file only the host has */
  marker: string;
  sleeper: ChildProcess;
  /** a host file open for reading, to be given to the runtime as its fd 9 */
  fd9: number;
  /** MAJOR:MINOR of the file system under base.dir */
  rootDev: string;
  before: HostState;
  /** the host sleep is running (not gone, not a zombie: Node does not reap it while a run blocks) */
  sleeperAlive(): boolean;
  /** ends the sleep, closes fd 9, removes base.dir; what the caller asserts */
  finish(): { alive: boolean; dir: string; left: string[]; removed: boolean };
}

/** Sets up the host side in a new temp dir named PREFIX-XXXX; throws with what to install when gcc fails. */
export function setUpEscapeHost(prefix: string): EscapeHost {
  const base = makeTempDir(prefix);
  const probe = join(base.dir, 'escape-probe');
  try {
    execaSync('gcc', ['-static', '-O2', '-Wall', '-o', probe, PROBE_SOURCE], { stdin: 'ignore', stdout: 'ignore', stderr: 'pipe' });
  } catch (e) {
    base.remove();
    throw new Error(`compiling ${PROBE_SOURCE} with gcc -static failed (Debian: apt-get install gcc libc6-dev): ${(e as { stderr?: Buffer }).stderr ?? e}`);
  }
  const marker = join(base.dir, 'host-marker');
  writeFileSync(marker, 'only the host has this\n');
  writeFileSync(join(base.dir, 'host-secret'), 'a host file open on fd 9\n');
  const fd9 = openSync(join(base.dir, 'host-secret'), 'r');
  const sleeper = spawn('sleep', ['600'], { stdio: 'ignore' });
  const dev = statSync(base.dir, { bigint: true }).dev;
  const rootDev = `${Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn))}:${Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn))}`;
  const sleeperAlive = () => {
    try {
      return !/^\d+ \(.*\) [ZX]/.test(readFileSync(`/proc/${sleeper.pid}/stat`, 'utf8'));
    } catch {
      return false;
    }
  };
  return {
    base,
    probe,
    marker,
    sleeper,
    fd9,
    rootDev,
    before: hostState(),
    sleeperAlive,
    finish() {
      const alive = sleeper.pid !== undefined && sleeperAlive();
      sleeper.kill('SIGKILL');
      closeSync(fd9);
      const left = base.remove();
      return { alive, dir: base.dir, left, removed: !existsSync(base.dir) };
    },
  };
}
