#!/usr/bin/env node
// pnpm bench: start-to-exit of `nspawn -D tree /bin/true` (a busybox tree; /bin/true is PID 1, the console a pty
// as for any run without a terminal), of systemd-nspawn 252 with the same arguments and of the native helper alone
// (nspawn's plan precomputed), measured in one run, interleaved, as root.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, closeSync, rmSync, writeFileSync, cpSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inReferenceCgroup, report } from '../../../scripts/bench-report.mjs';

const REPO = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const RUNS = Number(process.env.BENCH_RUNS ?? 40);
const WARMUP = 5;

if (process.getuid() !== 0) {
  console.error('bench: must run as root');
  process.exit(1);
}
// (systemd-nspawn --keep-unit splits its caller's cgroup: the bench runs in one of its own)
await inReferenceCgroup();
const runtime = await import(join(REPO, 'packages/runtime/dist/index.js'));
const dir = mkdtempSync('/var/tmp/nspawn-bench-');
try {
  const tree = join(dir, 'box');
  execFileSync(join(REPO, 'scripts/make-busybox-tree.sh'), [tree]);
  const treeSd = join(dir, 'box-sd');
  cpSync(tree, treeSd, { recursive: true, verbatimSymlinks: true });

  // the helper alone: the plan nspawn would send, written once to a file the helper reads as fd 3
  const prepared = runtime.prepareContainer({ directory: tree, parameters: ['/bin/true'], consoleMode: 'read-only' }, runtime.nodePrepareEnv(runtime.nodeTree));
  const plan = runtime.planContainer(prepared.config, runtime.probeHost(), runtime.nodeTree(tree), { hex128: () => '0123456789abcdef0123456789abcdef' });
  const planFile = join(dir, 'plan');
  writeFileSync(planFile, runtime.encodePlan(plan));
  runtime.ensureHostScaffolding(runtime.probeHost());

  const nspawn = join(REPO, 'apps/cli/bin/nspawn');
  const helper = runtime.helperPath();
  const cases = {
    nspawn: () => spawnSync(nspawn, ['-D', tree, '/bin/true'], { stdio: 'ignore' }),
    'helper alone': () => {
      const fd = openSync(planFile, 'r');
      try {
        return spawnSync(helper, [], { stdio: ['ignore', 'ignore', 'ignore', fd] });
      } finally {
        closeSync(fd);
      }
    },
  };
  if (existsSync('/usr/bin/systemd-nspawn'))
    cases['systemd-nspawn'] = () =>
      spawnSync('systemd-nspawn', ['--register=no', '--keep-unit', '-D', treeSd, '/bin/true'], { stdio: 'ignore' });
  else console.warn('bench: systemd-nspawn is not installed (apt-get install systemd-container); comparing without it');

  const times = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
  for (let i = 0; i < WARMUP + RUNS; i++) {
    for (const [name, run] of Object.entries(cases)) {
      const t0 = process.hrtime.bigint();
      const r = run();
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (r.status !== 0) throw new Error(`bench: ${name} failed (status ${r.status})`);
      if (i >= WARMUP) times[name].push(ms);
    }
  }
  const st = report(`start-to-exit of -D tree /bin/true (busybox), ${RUNS} runs each, interleaved (ms)`, times, { digits: 2, goal: 0.75 });

  console.log(`nspawn / helper alone (median): ${(st.nspawn.median / st['helper alone'].median).toFixed(2)}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
