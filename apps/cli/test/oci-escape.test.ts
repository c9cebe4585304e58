/**
 * The escape battery (test/escape.test.ts, fixtures/escape-probe.c) inside an nspawn-oci container: the same
 * bundle (runc's default config.json from `nspawn-oci spec`, the probe as its process, no seccomp profile) run by
 * runc and by nspawn-oci (`run`, in the foreground), and every attempt must end the same way with the same errno,
 * except the differences listed in DIFFERENCES (each asserted, so it fails once fixed).
 *
 * Around every run, as in the battery under nspawn: a host `sleep` whose PID the probe tries to kill, a host file
 * open on fd 9 of the runtime (neither runtime passes it on), a session keyring with a canary key (the probe's
 * --host-wrap mode), and checks that the host's hostname, core_pattern and API mounts are as they were, that no
 * mount is left behind and that each runtime's state is gone.
 *
 * Needs root, gcc and runc (scripts/setup.sh --test); fails, never skips, without them.
 */
import type { ChildProcess } from 'node:child_process';
import { execa } from 'execa';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mountsUnder, REPO } from './helpers/containers.js';
import { type EscapeHost, escapeResults, hostState, type HostState, setUpEscapeHost } from './helpers/escape-host.js';
const NSPAWN_OCI = join(REPO, 'apps/cli/bin/nspawn-oci');
const RUNTIMES = [
  ['runc', '/usr/sbin/runc'],
  ['nspawn-oci', NSPAWN_OCI],
] as const;
type Runtime = (typeof RUNTIMES)[number][0];
const ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };

/** An attempt that ends differently under the two runtimes: the expected results, and why. */
interface Difference {
  attempts: string[];
  runc: string;
  'nspawn-oci': string;
  reason: string;
}
const DIFFERENCES: Difference[] = [];

let host: EscapeHost | undefined;
let base: EscapeHost['base'] | undefined;
let probe = '';
let marker = '';
let sleeper: ChildProcess | undefined;
let fd9 = -1;
let rootDev = '';
let hostBefore: HostState | undefined;
const sleeperAlive = () => host!.sleeperAlive();

beforeAll(() => {
  if (process.getuid?.() !== 0) throw new Error('oci-escape: needs root');
  if (!existsSync('/usr/sbin/runc')) throw new Error('oci-escape: runc is missing (scripts/setup.sh --test installs it)');
  host = setUpEscapeHost('oci-escape-');
  ({ base, probe, marker, sleeper, fd9, rootDev, before: hostBefore } = host);
});

afterAll(() => {
  if (!host) return;
  const { alive, dir, left, removed } = host.finish();
  expect(alive, 'the host sleep survived every run').toBe(true);
  expect(left, `mounts left under ${dir}`).toEqual([]);
  expect(removed, `${dir} was not removed`).toBe(true);
});

async function runProbe(name: Runtime, path: string, probeArgs: string[]) {
  const runDir = join(base!.dir, name);
  const bundle = join(runDir, 'bundle');
  const state = join(runDir, 'state');
  mkdirSync(state, { recursive: true });
  const tree = join(bundle, 'rootfs');
  await execa(join(REPO, 'scripts/make-busybox-tree.sh'), [tree], { stdout: 'ignore' });
  copyFileSync(probe, join(tree, 'escape-probe'));
  chmodSync(join(tree, 'escape-probe'), 0o755);
  await execa('mknod', [join(tree, 'escape-node'), 'c', '1', '11']);
  // runc's default config (the one `runc spec` writes), the probe as its process
  await execa(NSPAWN_OCI, ['spec', '-b', bundle], { env: ENV });
  const spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
  spec.process.terminal = false;
  spec.process.args = ['/escape-probe', ...probeArgs];
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec, null, 2));
  const report = join(runDir, 'keyring-report');
  // the wrapper puts the serials of its session keyring and canary key into the config, then runs the runtime
  const script = 'sed -i "s/@SESSION@/$1/; s/@KEY@/$2/" "$3/config.json" && exec "$4" --root "$5" run -b "$3" "$6"';
  const argv = ['--host-wrap', report, '--', '/bin/sh', '-c', script, 'sh', '{SESSION}', '{KEY}', bundle, path, state, `escape-${name}`];
  const stdio = ['ignore', 'pipe', 'pipe', 'ignore', 'ignore', 'ignore', 'ignore', 'ignore', 'ignore', fd9 as unknown as 'inherit'] as const;
  const r = await execa(probe, argv, { env: ENV, extendEnv: false, timeout: 60000, killSignal: 'SIGKILL', stdio, reject: false });
  expect(mountsUnder(runDir), `${name}: mounts left in the host`).toEqual([]);
  expect(readdirSync(state), `${name}: state left`).toEqual([]);
  const out = String(r.stdout ?? '').split('\n').filter((l) => l !== '');
  return { status: r.exitCode, out, stderr: String(r.stderr ?? ''), res: escapeResults(out), keyring: existsSync(report) ? readFileSync(report, 'utf8').split('\n').filter((l) => l !== '') : ['(no report)'] };
}

describe('escape battery inside an OCI container: nspawn-oci ends every attempt as runc does', () => {
  it('runc default config, no seccomp profile', async () => {
    const probeArgs = [`host-pid=${sleeper!.pid}`, 'host-session=@SESSION@', 'host-key=@KEY@', `root-dev=${rootDev}`, `marker=${marker}`, 'image-node=/escape-node'];
    const runs = {} as Record<Runtime, Awaited<ReturnType<typeof runProbe>>>;
    for (const [name, path] of RUNTIMES) {
      const run = await runProbe(name, path, probeArgs);
      expect(run.status, `${name} exit status; output:\n${run.out.join('\n')}\n${run.stderr}`).toBe(0);
      expect(run.out.at(-1), `${name}: the probe did not finish`).toBe('end');
      expect(run.res.size, `${name}: attempts reported`).toBeGreaterThan(30);
      expect(run.keyring.slice(1), `${name}: host keyring`).toEqual(['session-still-ours: yes', 'canary-payload: same', 'canary-description: same', 'session-keyring: same', 'user-keyring: same']);
      expect(sleeperAlive(), `${name}: the host sleep was killed`).toBe(true);
      expect(hostState(), `${name}: host name, core_pattern, API mounts`).toEqual(hostBefore);
      runs[name] = run;
    }
    console.log(`oci escape battery:\n${[...runs.runc.res.keys()].map((a) => `  ${a}: runc ${runs.runc.res.get(a)}, nspawn-oci ${runs['nspawn-oci'].res.get(a)}`).join('\n')}`);
    expect([...runs['nspawn-oci'].res.keys()]).toEqual([...runs.runc.res.keys()]);
    const unexplained: string[] = [];
    for (const a of runs.runc.res.keys()) {
      const rc = runs.runc.res.get(a);
      const ours = runs['nspawn-oci'].res.get(a);
      const d = DIFFERENCES.find((x) => x.attempts.includes(a));
      if (d) {
        if (rc !== d.runc || ours !== d['nspawn-oci']) unexplained.push(`${a}: runc ${rc}, nspawn-oci ${ours}; DIFFERENCES expects runc ${d.runc}, nspawn-oci ${d['nspawn-oci']}`);
      } else if (rc !== ours) unexplained.push(`${a}: runc ${rc}, nspawn-oci ${ours}`);
    }
    expect(unexplained, 'attempts that end differently').toEqual([]);
    // the host file on the runtime's fd 9 reaches neither container
    for (const [name] of RUNTIMES) expect(runs[name].res.get('fd9-read'), `${name}: fd 9`).not.toBe('ok');
  }, 240000);
});
