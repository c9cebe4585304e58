#!/usr/bin/env node
// pnpm bench: warm start of a container through nspawnd (start to exit of /bin/true, asked over its varlink
// socket by a warm client, and by nspawnctl) against unshare(1) doing the same on the same busybox tree (new
// pid, mount, uts, ipc and net namespaces, /proc, chroot), and systemd-nspawn 252; one run, interleaved, as root.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { report } from '../../cli/bench/report.mjs';

const REPO = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const RUNS = Number(process.env.BENCH_RUNS ?? 40);
const WARMUP = 5;
if (process.getuid() !== 0) {
  console.error('bench: must run as root');
  process.exit(1);
}
const { varlinkCall } = await import(join(REPO, 'packages/runtime/dist/index.js'));
const base = mkdtempSync('/var/tmp/dm-bench-');
const env = {
  ...process.env,
  NSPAWND_RUNTIME_DIR: join(base, 'run'),
  NSPAWND_CONFIG_DIR: join(base, 'etc'),
  NSPAWND_LOG_DIR: join(base, 'log'),
  NSPAWND_MACHINES_DIR: join(base, 'machines'),
};
mkdirSync(join(base, 'machines'));
const tree = join(base, 'machines', 'dm-bench');
execFileSync(join(REPO, 'scripts/make-busybox-tree.sh'), [tree]);
const treeSd = join(base, 'box-sd');
cpSync(tree, treeSd, { recursive: true, verbatimSymlinks: true });
const d = spawn(process.execPath, [join(REPO, 'apps/daemon/bin/nspawnd')], { env, stdio: ['ignore', 'ignore', 'pipe'] });
try {
  await new Promise((res, rej) => {
    let out = '';
    d.stderr.on('data', (x) => {
      out += x;
      if (out.includes('listening on')) res();
    });
    d.on('exit', () => rej(new Error(`nspawnd exited: ${out}`)));
  });
  const sock = join(env.NSPAWND_RUNTIME_DIR, 'io.systemd.Machine');
  const viaDaemon = async () => {
    const [r] = await varlinkCall(sock, 'io.nspawn.Machine.Start', { name: 'dm-bench', command: ['/bin/true'], wait: true });
    return { status: r.exitStatus };
  };
  const cases = {
    'nspawnd': viaDaemon,
    'nspawnctl': async () => {
      // nspawnctl has no "run and wait" verb; its cost is Node's start plus the same call
      const r = spawnSync(process.execPath, ['-e', `import(${JSON.stringify(join(REPO, 'packages/runtime/dist/index.js'))}).then(m=>m.varlinkCall(${JSON.stringify(sock)},'io.nspawn.Machine.Start',{name:'dm-bench',command:['/bin/true'],wait:true})).then(([r])=>process.exit(r.exitStatus))`], { stdio: 'ignore' });
      return r;
    },
    'unshare(1)': async () =>
      spawnSync('unshare', ['--fork', '--pid', '--mount', '--uts', '--ipc', '--net', '--mount-proc', `--root=${tree}`, '/bin/true'], { stdio: 'ignore' }),
  };
  if (existsSync('/usr/bin/systemd-nspawn'))
    cases['systemd-nspawn'] = async () => spawnSync('systemd-nspawn', ['--register=no', '--keep-unit', '-q', '-D', treeSd, '-P', '/bin/true'], { stdio: 'ignore' });
  const times = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
  for (let i = 0; i < WARMUP + RUNS; i++) {
    for (const [name, run] of Object.entries(cases)) {
      const t0 = process.hrtime.bigint();
      const r = await run();
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (r.status !== 0) throw new Error(`bench: ${name} failed (status ${r.status})`);
      if (i >= WARMUP) times[name].push(ms);
    }
  }
  const st = report(`warm start-to-exit of /bin/true in a busybox tree, ${RUNS} runs each, interleaved (ms)`, times, { digits: 2 });
  const ratio = st.nspawnd.median / st['unshare(1)'].median;
  console.log(`nspawnd / unshare(1) (median): ${ratio.toFixed(2)}  (goal <= 3: ${ratio <= 3 ? 'met' : 'NOT met'})`);
  if (st['systemd-nspawn']) console.log(`systemd-nspawn / unshare(1) (median): ${(st['systemd-nspawn'].median / st['unshare(1)'].median).toFixed(2)}`);
} finally {
  d.kill('SIGTERM');
  await new Promise((r) => d.on('exit', r));
  rmSync(base, { recursive: true, force: true });
}
