#!/usr/bin/env node
// pnpm bench (as root), measured in one run, interleaved:
//  1. start-to-exit of /bin/true in a busybox tree: nspawn -U (ownership map: picked range, OFD lock, idmapped
//     root) against a plain nspawn start and against systemd-nspawn -U (and plain, for context);
//  2. chown of a Debian tree (scripts/make-debian-tree.sh) to a new range: nspawn --private-users-ownership=chown
//     against systemd-nspawn's, each start shifting the whole tree (the range alternates between two bases), plus
//     shiftTree() alone.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inReferenceCgroup, report } from '../../../scripts/bench-report.mjs';

const REPO = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const RUNS = Number(process.env.BENCH_RUNS ?? 30);
const CHOWN_RUNS = Number(process.env.BENCH_CHOWN_RUNS ?? 6);
const WARMUP = 3;
if (process.getuid() !== 0) {
  console.error('bench: must run as root');
  process.exit(1);
}
// (systemd-nspawn --keep-unit splits its caller's cgroup: the bench runs in one of its own)
await inReferenceCgroup();
if (!existsSync('/usr/bin/systemd-nspawn')) {
  console.error('bench: systemd-nspawn is needed as the reference (apt-get install systemd-container)');
  process.exit(1);
}
const { shiftTree } = await import(join(REPO, 'packages/uidrange/dist/index.js'));
const nspawn = join(REPO, 'apps/cli/bin/nspawn');
const common = ['-q', '--register=no', '--keep-unit'];
const dir = mkdtempSync('/var/tmp/ut-bench-');

function run(name, cmd, args) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`bench: ${name} failed (status ${r.status}): ${r.stderr}`);
  return ms;
}

function interleave(cases, runs, warmup) {
  const times = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
  for (let i = 0; i < warmup + runs; i++)
    for (const [name, f] of Object.entries(cases)) {
      const ms = f(i);
      if (i >= warmup) times[name].push(ms);
    }
  return times;
}

try {
  // 1. starts
  const tree = join(dir, 'box');
  execFileSync(join(REPO, 'scripts/make-busybox-tree.sh'), [tree]);
  const treeSd = join(dir, 'box-sd');
  cpSync(tree, treeSd, { recursive: true, verbatimSymlinks: true });
  const starts = interleave(
    {
      nspawn: () => run('nspawn', nspawn, [...common, '-D', tree, '-M', 'ut-bench', '/bin/true']),
      'nspawn -U': () => run('nspawn -U', nspawn, [...common, '-U', '-D', tree, '-M', 'ut-bench', '/bin/true']),
      'systemd-nspawn': () => run('systemd-nspawn', 'systemd-nspawn', [...common, '-D', treeSd, '-M', 'ut-bench', '/bin/true']),
      'sd-nspawn -U': () => run('sd-nspawn -U', 'systemd-nspawn', [...common, '-U', '-D', treeSd, '-M', 'ut-bench', '/bin/true']),
    },
    RUNS,
    WARMUP,
  );
  const s = report(`start-to-exit of /bin/true in a busybox tree, ${RUNS} runs each, interleaved (ms)`, starts);
  const over = s['nspawn -U'].median / s.nspawn.median - 1;
  console.log(`nspawn -U over plain nspawn (median): ${(over * 100).toFixed(1)}%  (goal < 10%: ${over < 0.1 ? 'met' : 'NOT met'})`);
  console.log(`nspawn -U / systemd-nspawn -U (median): ${(s['nspawn -U'].median / s['sd-nspawn -U'].median).toFixed(2)}`);
  console.log('');

  // 2. chown of a Debian tree
  const deb = join(dir, 'deb');
  execFileSync(join(REPO, 'scripts/make-debian-tree.sh'), [deb], { stdio: ['ignore', 'ignore', 'inherit'] });
  const debSd = join(dir, 'deb-sd');
  const debLib = join(dir, 'deb-lib');
  execFileSync('cp', ['-a', deb, debSd]);
  execFileSync('cp', ['-a', deb, debLib]);
  const inodes = Number(execFileSync('sh', ['-c', `find ${deb} | wc -l`], { encoding: 'utf8' }).trim());
  const bases = [0x6a0000, 0x6b0000];
  const chown = interleave(
    {
      nspawn: (i) => run('nspawn chown', nspawn, [...common, `--private-users=${bases[i % 2]}`, '--private-users-ownership=chown', '-D', deb, '-M', 'ut-bench', '/bin/true']),
      'systemd-nspawn': (i) =>
        run('systemd-nspawn chown', 'systemd-nspawn', [...common, `--private-users=${bases[i % 2]}`, '--private-users-ownership=chown', '-D', debSd, '-M', 'ut-bench', '/bin/true']),
      'shiftTree()': (i) => {
        const t0 = process.hrtime.bigint();
        if (shiftTree(debLib, bases[i % 2]) !== 'changed') throw new Error('bench: shiftTree did nothing');
        return Number(process.hrtime.bigint() - t0) / 1e6;
      },
    },
    CHOWN_RUNS,
    1,
  );
  report(`start with --private-users-ownership=chown to a new range of a Debian tree (${inodes} inodes), ${CHOWN_RUNS} runs each (ms)`, chown, { goal: 1 });
} finally {
  execFileSync('rm', ['-rf', '--one-file-system', dir]);
}
