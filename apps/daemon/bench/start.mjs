#!/usr/bin/env node
// pnpm bench: warm start of a container through nspawnd (start to exit of /bin/true, asked over its varlink
// socket by a warm client, and by a fresh Node process) against unshare(1) doing the same on the same busybox tree
// (new pid, mount, uts, ipc and net namespaces, /proc, chroot), and systemd-nspawn 252; one run, interleaved, as
// root. Then what the client costs: the real `nspawnctl list` (bin/nspawnctl: its native front end, which answers list
// without a Node start) and the Node command alone (bin/nspawnctl-node: its bundle and code cache) against the same
// io.systemd.Machine.List asked by the warm client, and Node's own start (an empty script) beside them.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inReferenceCgroup, report } from '../../../scripts/bench-report.mjs';
import { REPO, scratchDaemon } from './scratch.mjs';
const RUNS = Number(process.env.BENCH_RUNS ?? 40);
const WARMUP = 5;
if (process.getuid() !== 0) {
  console.error('bench: must run as root');
  process.exit(1);
}
// (systemd-nspawn --keep-unit splits its caller's cgroup: the bench runs in one of its own)
await inReferenceCgroup();
const { varlinkCall } = await import(join(REPO, 'packages/runtime/dist/index.js'));
const d = scratchDaemon('dm-bench-');
const tree = join(d.machines, 'dm-bench');
execFileSync(join(REPO, 'scripts/make-busybox-tree.sh'), [tree]);
const treeSd = join(d.base, 'box-sd');
cpSync(tree, treeSd, { recursive: true, verbatimSymlinks: true });
try {
  await d.start();
  const sock = d.sock;
  const viaDaemon = async () => {
    const [r] = await varlinkCall(sock, 'io.nspawn.Machine.Start', { name: 'dm-bench', command: ['/bin/true'], wait: true });
    return { status: r.exitStatus };
  };
  const cases = {
    'nspawnd': viaDaemon,
    'fresh Node': async () => {
      // a fresh Node process asking the same (nspawnctl has no "run and wait" verb: its own cost is measured below)
      const r = spawnSync(process.execPath, ['-e', `import(${JSON.stringify(join(REPO, 'packages/runtime/dist/index.js'))}).then(m=>m.varlinkCall(${JSON.stringify(sock)},'io.nspawn.Machine.Start',{name:'dm-bench',command:['/bin/true'],wait:true})).then(([r])=>process.exit(r.exitStatus))`], { stdio: 'ignore' });
      return r;
    },
    'unshare(1)': async () =>
      spawnSync('unshare', ['--fork', '--pid', '--mount', '--uts', '--ipc', '--net', '--mount-proc', `--root=${tree}`, '/bin/true'], { stdio: 'ignore' }),
  };
  if (existsSync('/usr/bin/systemd-nspawn'))
    cases['systemd-nspawn'] = async () => spawnSync('systemd-nspawn', ['--register=no', '--keep-unit', '-q', '-D', treeSd, '-P', '/bin/true'], { stdio: 'ignore' });
  // BENCH_ONLY=client: the client's part alone (a short run)
  if (process.env.BENCH_ONLY === 'client') for (const k of Object.keys(cases)) delete cases[k];
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
  const st = process.env.BENCH_ONLY === 'client' ? undefined : report(`warm start-to-exit of /bin/true in a busybox tree, ${RUNS} runs each, interleaved (ms)`, times, { digits: 2 });
  const ratio = st && st.nspawnd.median / st['unshare(1)'].median;
  if (st) console.log(`nspawnd / unshare(1) (median): ${ratio.toFixed(2)}  (goal <= 3: ${ratio <= 3 ? 'met' : 'NOT met'})`);
  if (st?.['systemd-nspawn']) console.log(`systemd-nspawn / unshare(1) (median): ${(st['systemd-nspawn'].median / st['unshare(1)'].median).toFixed(2)}`);

  // the client: nspawnctl list (a machine running, so that the list has a row) against the warm client's List
  const nspawnctl = join(REPO, 'apps/cli/bin/nspawnctl');
  const nspawnctlNode = join(REPO, 'apps/cli/bin/nspawnctl-node');
  if (!existsSync(join(REPO, 'apps/cli/dist', `nspawnctl-front-linux-${process.arch}`)))
    console.log('(no nspawnctl front end for this machine (apps/cli/dist/nspawnctl-front-linux-*): nspawnctl list below is the Node command)');
  const empty = join(d.base, 'empty.js');
  writeFileSync(empty, '');
  await varlinkCall(sock, 'io.nspawn.Machine.Start', { name: 'dm-bench', command: ['/bin/sh', '-c', 'exec sleep 3600'] });
  const env = { ...d.env };
  const ctlCases = {
    'List (warm)': async () => {
      await varlinkCall(sock, 'io.systemd.Machine.List', { acquireMetadata: 'graceful' }, { more: true });
      return { status: 0 };
    },
    'nspawnctl list': async () => spawnSync(nspawnctl, ['list'], { stdio: 'ignore', env }),
    // the same list from the Node command (what bin/nspawnctl runs for the verbs its front end leaves to Node)
    'Node nspawnctl': async () => spawnSync(process.execPath, [nspawnctlNode, 'list'], { stdio: 'ignore', env }),
    // another build beside it (BENCH_NSPAWNCTL_OTHER=path/to/bin/nspawnctl: say main's, for a before/after)
    ...(process.env.BENCH_NSPAWNCTL_OTHER ? { 'other nspawnctl': async () => spawnSync(process.env.BENCH_NSPAWNCTL_OTHER, ['list'], { stdio: 'ignore', env }) } : {}),
    'node (empty)': async () => spawnSync(process.execPath, [empty], { stdio: 'ignore' }),
  };
  const ctlTimes = Object.fromEntries(Object.keys(ctlCases).map((k) => [k, []]));
  // the CPU time the client processes used (user + system, from our cutime + cstime once each is reaped): on a busy
  // machine a steadier measure than wall time, which includes waiting for a CPU
  const childTicks = () => {
    const f = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
    return Number(f[13]) + Number(f[14]);
  };
  const cpu = Object.fromEntries(Object.keys(ctlCases).map((k) => [k, 0]));
  for (let i = 0; i < WARMUP + RUNS; i++) {
    for (const [name, run] of Object.entries(ctlCases)) {
      const c0 = childTicks();
      const t0 = process.hrtime.bigint();
      const r = await run();
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (r.status !== 0) throw new Error(`bench: ${name} failed (status ${r.status})`);
      if (i >= WARMUP) {
        ctlTimes[name].push(ms);
        cpu[name] += childTicks() - c0;
      }
    }
  }
  await varlinkCall(sock, 'io.systemd.Machine.Terminate', { name: 'dm-bench' });
  const c = report(`the client: nspawnctl list against the same List from a warm client, ${RUNS} runs each, interleaved (ms)`, ctlTimes, { digits: 2 });
  const over = c['nspawnctl list'].median - c['List (warm)'].median;
  const overNode = c['Node nspawnctl'].median - c['List (warm)'].median;
  console.log(`nspawnctl's own cost over the daemon's (median): ${over.toFixed(1)} ms (goal <= 30: ${over <= 30 ? 'met' : 'NOT met'})`);
  console.log(`the Node command's own cost over the daemon's (median): ${overNode.toFixed(1)} ms, ` +
    `of which Node's start: ${c['node (empty)'].median.toFixed(1)} ms, its code: ${(overNode - c['node (empty)'].median).toFixed(1)} ms`);
  const tick = 1000 / 100; // ms per clock tick (USER_HZ)
  for (const k of Object.keys(cpu)) if (k !== 'List (warm)') console.log(`CPU per run of ${k}: ${((cpu[k] * tick) / RUNS).toFixed(1)} ms (user + system)`);
} finally {
  await d.stop();
}
