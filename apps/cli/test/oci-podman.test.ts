/**
 * nspawn-oci under a real engine: podman (Debian 12's 4.3, cgroupfs, no systemd) with `--runtime
 * apps/cli/bin/nspawn-oci`, runc as the yardstick in the same run. An image made with `podman import` from a busybox
 * tree (nothing is pulled); exit codes, `-it` through the console socket (conmon's) for run and exec, `--rm`, `exec`,
 * `kill`, `stop`.
 *
 * Isolated: podman's storage, run root and tmpdir (one set per runtime), the runtimes' --root and the containers'
 * cgroup parent are this test's own (nothing of a user's podman is read or touched; `--network none`: no firewall
 * rules, no links); removed at the end, with the cgroups podman leaves (conmon's) under that parent. The runtime's
 * --root comes from a wrapper script (`exec RUNTIME --root DIR "$@"`): podman 4.3 does not pass --runtime-flag on
 * to the cleanup its conmon runs, which would look for the container under the default root.
 *
 * Here podman needs `--ulimit nofile=1024:1024 --ulimit nproc=1024:1024`: the VM's hard limits are lower than its
 * defaults. Needs root, podman, conmon, runc and script(1) (scripts/setup.sh --test); fails, never skips, without.
 */
import { spawn } from 'node:child_process';
import { execa } from 'execa';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, mountsUnder, REPO } from './helpers/containers.js';

const NSPAWN_OCI = join(REPO, 'apps/cli/bin/nspawn-oci');
const RUNTIMES = [
  ['runc', '/usr/sbin/runc'],
  ['nspawn-oci', NSPAWN_OCI],
] as const;
const IMAGE = 'localhost/nspawn-oci-test:1';
const RUN_FLAGS = ['--network', 'none', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'];
const CGROUP_PARENT = `/nspawn-oci-podman-test-${process.pid}`;

let base: ReturnType<typeof makeTempDir> | undefined;
let env: NodeJS.ProcessEnv = {};

/** podman with this test's own storage and state for RUNTIME, through the wrapper that gives it our --root. */
function podmanArgs(runtime: string, args: string[]): string[] {
  const name = RUNTIMES.find(([, p]) => p === runtime)![0];
  const d = join(base!.dir, name);
  return [
    ...['--root', join(d, 'storage'), '--runroot', join(d, 'run'), '--tmpdir', join(d, 'tmp'), '--storage-driver', 'vfs'],
    ...['--cgroup-manager', 'cgroupfs', '--events-backend', 'file', '--runtime', join(d, 'runtime')],
    ...args,
  ];
}
const stateOf = (name: string) => join(base!.dir, name, 'state');

async function podman(runtime: string, args: string[], opts: { timeout?: number } = {}) {
  return await execa('podman', podmanArgs(runtime, args), { env, extendEnv: false, reject: false, timeout: opts.timeout ?? 60000, stdin: 'ignore', all: true });
}

const runArgs = (...rest: string[]) => ['run', '--cgroup-parent', CGROUP_PARENT, ...RUN_FLAGS, ...rest];

/** The cgroup directories under our parent in every hierarchy, deepest first. */
function ourCgroups(): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
    out.push(d);
  };
  for (const h of readdirSync('/sys/fs/cgroup')) {
    const d = join('/sys/fs/cgroup', h, CGROUP_PARENT);
    if (existsSync(d)) walk(d);
  }
  return out;
}

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error('oci-podman: needs root');
  for (const bin of ['podman', 'conmon', 'runc', 'script'])
    if ((await execa('sh', ['-c', `command -v ${bin}`], { reject: false })).exitCode !== 0)
      throw new Error(`oci-podman: ${bin} is missing (scripts/setup.sh --test installs it)`);
  base = makeTempDir('nspawn-oci-podman-');
  const d = base.dir;
  // containers.conf of our own: cgroupfs, events to a file (no journald), nothing of the host's engine settings
  writeFileSync(join(d, 'containers.conf'), '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n');
  writeFileSync(join(d, 'storage.conf'), `[storage]\ndriver = "vfs"\ngraphroot = "${d}/storage"\nrunroot = "${d}/run"\n`);
  for (const [name, path] of RUNTIMES) {
    mkdirSync(join(d, name, 'state'), { recursive: true });
    writeFileSync(join(d, name, 'runtime'), `#!/bin/sh\nexec '${path}' --root '${stateOf(name)}' "$@"\n`);
    chmodSync(join(d, name, 'runtime'), 0o755);
  }
  env = {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    CONTAINERS_CONF: join(d, 'containers.conf'),
    CONTAINERS_STORAGE_CONF: join(d, 'storage.conf'),
    CONTAINERS_REGISTRIES_CONF: join(d, 'registries.conf'),
    TERM: 'xterm',
  };
  writeFileSync(join(d, 'registries.conf'), 'unqualified-search-registries = []\n');
  await execa(join(REPO, 'scripts/make-busybox-tree.sh'), [join(d, 'tree')], { stdout: 'ignore' });
  // the seccomp probe (oci-seccomp.test.ts's) in the image: a system call per argument, its errno
  await execa('gcc', ['-static', '-O1', '-o', join(d, 'tree/probe'), join(REPO, 'apps/cli/test/fixtures/seccomp-probe.c')]);
  await execa('tar', ['-C', join(d, 'tree'), '-cf', join(d, 'tree.tar'), '.']);
  for (const [, rt] of RUNTIMES) await execa('podman', podmanArgs(rt, ['import', join(d, 'tree.tar'), IMAGE]), { env, extendEnv: false, stdin: 'ignore', stdout: 'ignore' });
}, 180000);

afterAll(async () => {
  if (!base) return;
  const problems: string[] = [];
  for (const [name, rt] of RUNTIMES) {
    if (!existsSync(join(base.dir, name, 'runtime'))) continue;
    const r = await podman(rt, ['rm', '-a', '-f', '-t', '0']);
    if (r.exitCode !== 0) problems.push(`podman rm -a: ${r.all}`);
    await podman(rt, ['rmi', '-a', '-f']);
    const left = readdirSync(stateOf(name));
    if (left.length) problems.push(`${name} state left: ${left.join(' ')}`);
  }
  // what podman leaves under the parent we gave it (conmon's cgroups): empty directories, removed
  for (const c of ourCgroups()) {
    const procs = existsSync(join(c, 'cgroup.procs')) ? readFileSync(join(c, 'cgroup.procs'), 'utf8').trim() : '';
    if (procs !== '') problems.push(`cgroup ${c} still has ${procs}`);
    else rmdirSync(c);
  }
  const dir = base.dir;
  const mounts = mountsUnder(dir);
  const left = base.remove();
  expect(problems).toEqual([]);
  expect(mounts, `mounts left under ${dir}`).toEqual([]);
  expect(left, `mounts left under ${dir}`).toEqual([]);
  expect(existsSync(dir)).toBe(false);
}, 120000);

/** podman run -it under script(1) (a terminal for podman), typing INPUT once it runs; its output and exit status. */
function runTty(runtime: string, args: string[], input: string): Promise<{ code: number | null; out: string }> {
  const cmd = ['podman', ...podmanArgs(runtime, args)].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
  return new Promise((res) => {
    const p = spawn('script', ['-qec', cmd, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let typed = false;
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      // the shell's prompt: the container's terminal is up and attached
      if (!typed && out.includes('# ')) {
        typed = true;
        p.stdin.write(input);
      }
    });
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), 60000);
    p.on('close', (code) => {
      clearTimeout(timer);
      p.stdin.destroy();
      res({ code, out });
    });
  });
}

describe.each(RUNTIMES)('podman --runtime %s', (name, rt) => {
  it('run --rm: the exit code and the output come back, and nothing is left', async () => {
    const r = await podman(rt, runArgs('--rm', IMAGE, 'sh', '-c', 'echo out-$((6*7)); echo err >&2; exit 3'));
    expect(r.exitCode, r.all).toBe(3);
    expect(r.all).toContain('out-42');
    expect(r.all).toContain('err');
    const ps = await podman(rt, ['ps', '-a', '-q']);
    expect(ps.stdout).toBe('');
    expect(readdirSync(stateOf(name))).toEqual([]);
  });

  it('run -it: a terminal through the console socket, typed input reaches the shell, its exit code comes back', async () => {
    const r = await runTty(rt, runArgs('--rm', '-it', IMAGE, 'sh'), 'tty; echo typed-$((40+2)); exit 7\n');
    expect(r.code, r.out).toBe(7);
    expect(r.out).toMatch(/\/dev\/pts\/\d+/);
    expect(r.out).toContain('typed-42');
  });

  it('exec -it: a terminal through the console socket in a running container', async () => {
    const c = `t-${name}`;
    expect((await podman(rt, runArgs('-d', '--name', c, IMAGE, 'sleep', '300'))).exitCode).toBe(0);
    const r = await runTty(rt, ['exec', '-it', c, 'sh'], 'tty; echo typed-$((40+2)); exit 7\n');
    expect(r.code, r.out).toBe(7);
    expect(r.out).toMatch(/\/dev\/pts\/\d+/);
    expect(r.out).toContain('typed-42');
    expect((await podman(rt, ['rm', '-f', '-t', '0', c])).exitCode).toBe(0);
  });

  it('exec: a process in the running container, its output and exit code; kill and stop', async () => {
    const c = `c-${name}`;
    // PID 1 ends with 10 on SIGUSR1 and with 9 on SIGTERM (as PID 1 it ignores what it does not handle)
    const script = 'trap "exit 10" USR1; trap "exit 9" TERM; echo ready > /tmp/ready; while :; do sleep 0.1; done';
    const r = await podman(rt, runArgs('-d', '--name', c, IMAGE, 'sh', '-c', script));
    expect(r.exitCode, r.all).toBe(0);
    const e = await podman(rt, ['exec', c, 'sh', '-c', 'cat /tmp/ready; echo pid1=$(cat /proc/1/comm); exit 4']);
    expect(e.exitCode, e.all).toBe(4);
    expect(e.all).toContain('ready');
    expect(e.all).toContain('pid1=sh');
    const k = await podman(rt, ['kill', '-s', 'USR1', c]);
    expect(k.exitCode, k.all).toBe(0);
    const w = await podman(rt, ['wait', c]);
    expect(w.stdout.trim(), w.all).toBe('10');
    expect((await podman(rt, ['rm', c])).exitCode).toBe(0);

    const s = `s-${name}`;
    expect((await podman(rt, runArgs('-d', '--name', s, IMAGE, 'sh', '-c', script))).exitCode).toBe(0);
    const t0 = Date.now();
    const st = await podman(rt, ['stop', '-t', '20', s]);
    expect(st.exitCode, st.all).toBe(0);
    expect(Date.now() - t0, 'stop ends with SIGTERM, not its timeout').toBeLessThan(15000);
    const code = await podman(rt, ['inspect', '--format', '{{.State.ExitCode}}', s]);
    expect(code.stdout.trim()).toBe('9');
    expect((await podman(rt, ['rm', s])).exitCode).toBe(0);

    const x = `k-${name}`;
    expect((await podman(rt, runArgs('-d', '--name', x, IMAGE, 'sleep', '300'))).exitCode).toBe(0);
    expect((await podman(rt, ['kill', x])).exitCode).toBe(0);
    const wk = await podman(rt, ['wait', x]);
    expect(wk.stdout.trim(), wk.all).toBe('137');
    expect((await podman(rt, ['rm', x])).exitCode).toBe(0);
    expect(readdirSync(stateOf(name))).toEqual([]);
  });
});

describe('podman\'s default seccomp profile (linux.seccomp) under both runtimes', () => {
  // perf_event_open(NULL, ...): EFAULT without a filter, EPERM from the profile (no CAP_SYS_ADMIN); personality with
  // a value the profile does not list: its default (ENOSYS); a number beyond every table: runc's -ENOSYS stub
  const PROBE = ['/probe', 'status', 'perf_event_open=298,0,0,0,0,0', 'personality=135,0x40000', 'getpid=39', 'beyond=999'];
  it('the same filter: Seccomp: 2, the same errno for each call as under runc; unconfined: none', async () => {
    const out: Record<string, string[]> = {};
    for (const [name, rt] of RUNTIMES) {
      const r = await podman(rt, runArgs('--rm', IMAGE, ...PROBE));
      expect(r.exitCode, r.all).toBe(0);
      out[name] = r.stdout.split('\n');
      const u = await podman(rt, runArgs('--rm', '--security-opt', 'seccomp=unconfined', IMAGE, ...PROBE));
      expect(u.exitCode, u.all).toBe(0);
      expect(u.stdout.split('\n'), `${name} unconfined`).toEqual(expect.arrayContaining(['Seccomp:\t0', 'perf_event_open: EFAULT', 'personality: ok']));
    }
    expect(out['nspawn-oci']).toEqual(out.runc);
    expect(out['nspawn-oci']).toEqual(expect.arrayContaining(['Seccomp:\t2', 'perf_event_open: EPERM', 'personality: ENOSYS', 'getpid: ok', 'beyond: ENOSYS']));
  }, 120000);
});
