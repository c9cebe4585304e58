#!/usr/bin/env node
// pnpm bench: start-to-exit of `nspawn -i image.raw /bin/true` against `nspawn -D tree /bin/true` on the same busybox
// tree (the image: one ext4 root partition made from it), interleaved, as root; also -x and --read-only on the image.
// Goal: -i at most 1.3 times -D (median). systemd-nspawn 252 refuses -i on a host without udev, so -D is the reference.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { report } from '../../../scripts/bench-report.mjs';

const REPO = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const RUNS = Number(process.env.BENCH_RUNS ?? 40);
const WARMUP = 5;
const GOAL = 1.3;
const ROOT_TYPE = process.arch === 'arm64' ? 'B921B045-1DF0-41C3-AF44-4C6F280D3FAE' : '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709';

if (process.getuid() !== 0) {
  console.error('bench: must run as root');
  process.exit(1);
}
const dir = mkdtempSync('/var/tmp/nspawn-bench-image-');
try {
  const tree = join(dir, 'box');
  execFileSync(join(REPO, 'scripts/make-busybox-tree.sh'), [tree]);
  const image = join(dir, 'box.raw');
  writeFileSync(image, '');
  truncateSync(image, 34 << 20);
  execFileSync('sfdisk', ['-q', image], { input: `label: gpt\nstart=2048, size=65536, type=${ROOT_TYPE}\n` });
  execFileSync('mkfs.ext4', ['-q', '-F', '-b', '4096', '-E', 'offset=1048576', '-d', tree, image, '32M']);

  const nspawn = join(REPO, 'apps/cli/bin/nspawn');
  const cases = {
    '-D tree': () => spawnSync(nspawn, ['-D', tree, '/bin/true'], { stdio: 'ignore' }),
    '-i image': () => spawnSync(nspawn, ['-i', image, '/bin/true'], { stdio: 'ignore' }),
    '-i --read-only': () => spawnSync(nspawn, ['--read-only', '-i', image, '/bin/true'], { stdio: 'ignore' }),
    '-x -i image': () => spawnSync(nspawn, ['-x', '-i', image, '/bin/true'], { stdio: 'ignore' }),
  };
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
  const st = report(`start-to-exit of /bin/true from an image and from the same tree, ${RUNS} runs each, interleaved (ms)`, times, { digits: 2 });
  const ratio = st['-i image'].median / st['-D tree'].median;
  console.log(`-i / -D (median): ${ratio.toFixed(2)}  (goal <= ${GOAL}: ${ratio <= GOAL ? 'met' : 'NOT met'})`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
