#!/usr/bin/env node
// pnpm bench: `-x /bin/true` on a Debian tree (scripts/make-debian-tree.sh) under nspawn and systemd-nspawn 252,
// on ext4 (a temp directory: nspawn's overlayfs against systemd's full copy) and on btrfs (a loop device made here:
// both take a snapshot), measured in one run, interleaved, as root. Goals: ext4 >= 20x faster, btrfs no slower.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inReferenceCgroup, report } from '../../../scripts/bench-report.mjs';

const REPO = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const RUNS = Number(process.env.BENCH_RUNS ?? 10);
const SD_COPY_RUNS = Number(process.env.BENCH_SD_COPY_RUNS ?? 3);
if (process.getuid() !== 0) {
  console.error('bench: must run as root');
  process.exit(1);
}
// (systemd-nspawn --keep-unit splits its caller's cgroup: the bench runs in one of its own)
await inReferenceCgroup();
const btrfs = await import(join(REPO, 'packages/btrfs/dist/index.js'));
const nspawn = join(REPO, 'apps/cli/bin/nspawn');
const base = mkdtempSync('/var/tmp/bt-bench-');
const img = join(base, 'btrfs.img');
const mnt = join(base, 'btrfs');
let loop;
const sh = (c, a) => execFileSync(c, a, { encoding: 'utf8' }).trim();

function run(tool, tree) {
  const [cmd, args] = tool === 'nspawn' ? [nspawn, []] : ['systemd-nspawn', []];
  const t0 = performance.now();
  const r = spawnSync(cmd, [...args, '-q', '--register=no', '--keep-unit', '-M', 'bt-bench', '-D', tree, '-x', '/bin/true'], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${tool} -x failed on ${tree}: ${r.stderr}`);
  return ms;
}

try {
  const ext4Tree = join(base, 'ext4', 'debian');
  execFileSync(join(REPO, 'scripts/make-debian-tree.sh'), [ext4Tree], { stdio: 'inherit' });
  sh('truncate', ['-s', '3G', img]);
  sh('mkfs.btrfs', ['-q', img]);
  loop = sh('losetup', ['--find', '--show', img]);
  mkdirSync(mnt);
  sh('mount', [loop, mnt]);
  const btrfsTree = join(mnt, 'debian');
  btrfs.copyTree(ext4Tree, btrfsTree, { subvolume: true }); // a subvolume, as systemd expects for its snapshot
  execFileSync('sync'); // the copies written back before timing anything
  const parentBefore = { ext4: readdirSync(join(base, 'ext4')), btrfs: readdirSync(mnt) };

  const results = {};
  for (const [fs, tree] of [
    ['ext4', ext4Tree],
    ['btrfs', btrfsTree],
  ]) {
    const times = { nspawn: [], 'systemd-nspawn': [] };
    for (let i = 0; i < 3; i++) {
      run('nspawn', tree); // warm-up
      if (fs === 'btrfs') run('systemd-nspawn', tree);
    }
    const sdRuns = fs === 'ext4' ? SD_COPY_RUNS : RUNS;
    for (let i = 0; i < RUNS; i++) {
      times.nspawn.push(run('nspawn', tree));
      if (i < sdRuns) times['systemd-nspawn'].push(run('systemd-nspawn', tree));
    }
    const left = readdirSync(fs === 'ext4' ? join(base, 'ext4') : mnt).filter((n) => !parentBefore[fs].includes(n));
    if (left.length) throw new Error(`-x left ${left.join(', ')} behind on ${fs}`);
    results[fs] = report(`\n-x /bin/true on a Debian tree (${fs}), ms`, times, { digits: 1 });
  }
  const speedup = results.ext4['systemd-nspawn'].median / results.ext4.nspawn.median;
  console.log(`\next4: nspawn is ${speedup.toFixed(1)}x faster than systemd-nspawn's copy (goal >= 20: ${speedup >= 20 ? 'met' : 'NOT met'})`);
  const ratio = results.btrfs.nspawn.median / results.btrfs['systemd-nspawn'].median;
  console.log(`btrfs: nspawn / systemd-nspawn = ${ratio.toFixed(2)} (goal <= 1: ${ratio <= 1 ? 'met' : 'NOT met'})`);
} finally {
  if (loop) {
    spawnSync('umount', [mnt]);
    spawnSync('losetup', ['-d', loop]);
  }
  rmSync(base, { recursive: true, force: true });
}
