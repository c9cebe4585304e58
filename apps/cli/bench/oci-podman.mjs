#!/usr/bin/env node
// pnpm bench: `podman run --rm IMAGE /bin/true` with nspawn-oci against runc (the goal: no slower than runc), in one
// run, interleaved, as root. The image is `podman import`ed from a busybox tree; podman's storage, run root, tmpdir,
// the runtimes' --root (a wrapper script gives it: podman 4.3 does not pass --runtime-flag to its cleanup) and the
// cgroup parent are the bench's own, removed at the end (test/oci-podman.test.ts isolates the same way).
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { report } from '../../../scripts/bench-report.mjs';

const REPO = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const RUNS = Number(process.env.BENCH_PODMAN_RUNS ?? 10);
// BENCH_PODMAN_TRACE=1: the wrapper logs every call podman and conmon make of the runtime (verb, duration), and the
// bench prints each verb's median per runtime after the table
const TRACE = process.env.BENCH_PODMAN_TRACE === '1';
const WARMUP = 2;
const IMAGE = 'localhost/nspawn-oci-bench:1';
const CGROUP_PARENT = `/nspawn-oci-podman-bench-${process.pid}`;
// the VM's hard limits are lower than podman's defaults
const RUN_FLAGS = ['--network', 'none', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024', '--cgroup-parent', CGROUP_PARENT];

if (process.getuid() !== 0) {
  console.error('bench: must run as root');
  process.exit(1);
}
for (const bin of ['podman', 'runc']) {
  if (spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0) {
    console.error(`bench: ${bin} is missing (scripts/setup.sh --test installs it)`);
    process.exit(1);
  }
}
const runtimes = { runc: '/usr/sbin/runc', 'nspawn-oci': join(REPO, 'apps/cli/bin/nspawn-oci') };
const dir = mkdtempSync('/var/tmp/nspawn-bench-podman-');
writeFileSync(join(dir, 'containers.conf'), '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n');
writeFileSync(join(dir, 'registries.conf'), 'unqualified-search-registries = []\n');
writeFileSync(join(dir, 'storage.conf'), `[storage]\ndriver = "vfs"\ngraphroot = "${dir}/storage"\nrunroot = "${dir}/run"\n`);
const env = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  CONTAINERS_CONF: join(dir, 'containers.conf'),
  CONTAINERS_STORAGE_CONF: join(dir, 'storage.conf'),
  CONTAINERS_REGISTRIES_CONF: join(dir, 'registries.conf'),
};
const podmanArgs = (name, args) => {
  const d = join(dir, name);
  return ['--root', join(d, 'storage'), '--runroot', join(d, 'run'), '--tmpdir', join(d, 'tmp'), '--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs', '--events-backend', 'file', '--runtime', join(d, 'runtime'), ...args];
};
const podman = (name, args) => spawnSync('podman', podmanArgs(name, args), { env, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });

let failed = false;
try {
  execFileSync(join(REPO, 'scripts/make-busybox-tree.sh'), [join(dir, 'tree')], { stdio: 'ignore' });
  execFileSync('tar', ['-C', join(dir, 'tree'), '-cf', join(dir, 'tree.tar'), '.']);
  for (const [name, path] of Object.entries(runtimes)) {
    mkdirSync(join(dir, name, 'state'), { recursive: true });
    const run = `'${path}' --root '${join(dir, name, 'state')}' "$@"`;
    writeFileSync(
      join(dir, name, 'runtime'),
      TRACE
        ? `#!/bin/sh\nt0=$(date +%s%N)\n${run}\nrc=$?\necho "$t0 $(date +%s%N) $rc $*" >> '${join(dir, name, 'trace.log')}'\nexit $rc\n`
        : `#!/bin/sh\nexec ${run}\n`,
    );
    chmodSync(join(dir, name, 'runtime'), 0o755);
    const r = podman(name, ['import', join(dir, 'tree.tar'), IMAGE]);
    if (r.status !== 0) throw new Error(`bench: podman import failed: ${r.stderr}`);
  }
  const times = Object.fromEntries(Object.keys(runtimes).map((k) => [k, []]));
  for (let i = 0; i < WARMUP + RUNS; i++) {
    for (const name of Object.keys(runtimes)) {
      const t0 = process.hrtime.bigint();
      const r = podman(name, ['run', '--rm', ...RUN_FLAGS, IMAGE, '/bin/true']);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (r.status !== 0) throw new Error(`bench: podman run with ${name} failed (status ${r.status}): ${r.stderr}`);
      if (i >= WARMUP) times[name].push(ms);
    }
  }
  const st = report(`podman run --rm IMAGE /bin/true (busybox image, podman ${podmanVersion()}), ${RUNS} runs each, interleaved (ms)`, times, { digits: 0 });
  const ratio = st['nspawn-oci'].median / st.runc.median;
  console.log(`nspawn-oci / runc (median): ${ratio.toFixed(2)}  (goal <= 1: ${ratio <= 1 ? 'met' : 'NOT met'})`);
  // (the VM is shared: the minimum of each is the run least disturbed by other work, and load stretches the Node
  // start of nspawn-oci's monitor more than runc's Go start; say the load too)
  console.log(`nspawn-oci / runc (min): ${(st['nspawn-oci'].min / st.runc.min).toFixed(2)}  load average: ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
  if (TRACE) traceReport();
} catch (e) {
  failed = true;
  console.error(e.message);
} finally {
  for (const name of Object.keys(runtimes)) {
    if (!existsSync(join(dir, name, 'runtime'))) continue;
    podman(name, ['rm', '-a', '-f', '-t', '0']);
    podman(name, ['rmi', '-a', '-f']);
  }
  // conmon's cgroups podman leaves under the parent: empty, removed deepest first
  for (const h of readdirSync('/sys/fs/cgroup')) {
    const top = join('/sys/fs/cgroup', h, CGROUP_PARENT);
    if (!existsSync(top)) continue;
    const dirs = [];
    const walk = (d) => {
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
      dirs.push(d);
    };
    walk(top);
    for (const d of dirs) if (readFileSync(join(d, 'cgroup.procs'), 'utf8').trim() === '') rmdirSync(d);
  }
  // vfs storage: plain directories, no mounts; refuse to delete across one all the same
  if (readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${dir}/`)) console.error(`bench: mounts left under ${dir}; not removed`);
  else if (process.env.BENCH_PODMAN_KEEP !== "1") rmSync(dir, { recursive: true, force: true });
  else console.error(`bench: kept ${dir}`);
}
if (failed) process.exit(1);

/** the wrapper's log: per runtime, each verb's calls per run and median duration (ms), the warm-up left out */
function traceReport() {
  const verbs = new Set();
  const per = {};
  for (const name of Object.keys(runtimes)) {
    const calls = readFileSync(join(dir, name, 'trace.log'), 'utf8').trim().split('\n').map((l) => {
      const [t0, t1, rc, ...argv] = l.split(' ');
      // the verb: the first word after the global options (--log FILE, --log-format F, --root DIR ...)
      let i = 0;
      while (i < argv.length && argv[i].startsWith('--')) i += argv[i].includes('=') || argv[i] === '--systemd-cgroup' ? 1 : 2;
      return { t0: Number(t0), ms: (Number(t1) - Number(t0)) / 1e6, rc, verb: argv[i] ?? '?' };
    });
    const creates = calls.map((c, i) => (c.verb === 'create' ? i : -1)).filter((i) => i >= 0);
    const kept = calls.slice(creates[WARMUP] ?? 0);
    per[name] = {};
    for (const c of kept) {
      verbs.add(c.verb);
      (per[name][c.verb] ??= []).push(c.ms);
    }
  }
  console.log('runtime calls per run and median ms (BENCH_PODMAN_TRACE)');
  for (const v of verbs) {
    const cells = Object.keys(runtimes).map((name) => {
      const xs = [...(per[name][v] ?? [])].sort((a, b) => a - b);
      return `${name} ${(xs.length / RUNS).toFixed(1)}x ${xs.length ? xs[Math.floor(xs.length / 2)].toFixed(0) : '-'} ms`;
    });
    console.log(`  ${v.padEnd(10)} ${cells.join('   ')}`);
  }
}

function podmanVersion() {
  return spawnSync('podman', ['--version'], { encoding: 'utf8' }).stdout.trim().replace(/^podman version /, '');
}
