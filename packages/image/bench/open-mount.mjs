#!/usr/bin/env node
// pnpm bench: what a raw image costs a container start, on a small GPT image (one ext4 root partition holding a busybox
// tree, made here with sfdisk and mkfs.ext4): openImage() (lock, dissect, loop devices; with and without systemd's
// fsck), then the mounts as the runtime's helper would do them (in a mount namespace of our own, from the plan),
// then close(); and the host-side mount in a holder's namespace. Medians and 90th percentiles of BENCH_RUNS runs
// (default 20), as root. For the later `nspawn -i image.raw /bin/true` against `-D` comparison (goal: at most 1.3x).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const REPO = resolve(HERE, '../../..');
const RUNS = Number(process.env.BENCH_RUNS ?? 20);
if (process.getuid() !== 0) {
  console.error('bench: must run as root (loop devices, mounts)');
  process.exit(1);
}
// the mounts below must not reach the host's mount table: run in a mount namespace of our own
if (!process.env.IM_BENCH_UNSHARED) {
  const r = spawnSync('unshare', ['--mount', '--propagation', 'private', process.execPath, fileURLToPath(import.meta.url)], {
    stdio: 'inherit',
    env: { ...process.env, IM_BENCH_UNSHARED: '1' },
  });
  process.exit(r.status ?? 1);
}

const im = await import(join(HERE, '../dist/index.js'));
const base = mkdtempSync('/var/tmp/im-bench-');
const sh = (c, a, input) => execFileSync(c, a, { encoding: 'utf8', ...(input ? { input } : { stdio: ['ignore', 'pipe', 'pipe'] }) });

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { median: q(0.5), p90: q(0.9) };
};

try {
  const tree = join(base, 'tree');
  sh('bash', [join(REPO, 'scripts/make-busybox-tree.sh'), tree]);
  const image = join(base, 'im-bench.raw');
  writeFileSync(image, '');
  truncateSync(image, 34 << 20);
  sh('sfdisk', ['-q', image], `label: gpt\nstart=2048, size=65536, type=${process.arch === 'arm64' ? 'B921B045-1DF0-41C3-AF44-4C6F280D3FAE' : '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709'}\n`);
  sh('mkfs.ext4', ['-q', '-F', '-b', '4096', '-E', `offset=${2048 * 512}`, '-d', tree, image, '32M']);
  const where = join(base, 'mnt');
  mkdirSync(where);

  const cases = {
    'open + close (lock, dissect, loop device)': async () => (await im.openImage(image, { fsck: false })).close(),
    'open + close, with fsck (systemd 252 default when writable)': async () => (await im.openImage(image)).close(),
    'open + mounts from the plan (this namespace) + close': async () => {
      const img = await im.openImage(image, { fsck: false });
      await img.mount(where, { namespace: 'current' });
      await img.close();
    },
    'the same, read-only': async () => {
      const img = await im.openImage(image, { readOnly: true });
      await img.mount(where, { namespace: 'current' });
      await img.close();
    },
    'the same, -x (overlay)': async () => {
      const img = await im.openImage(image, { ephemeral: true });
      await img.mount(where, { namespace: 'current' });
      await img.close();
    },
    'open + mount in a holder (private namespace) + close': async () => {
      const img = await im.openImage(image, { fsck: false });
      await img.mount();
      await img.close();
    },
  };
  console.log(`@nspawn/image bench: ${RUNS} runs each, ${process.arch}, node ${process.version}`);
  const rows = [];
  for (const [name, fn] of Object.entries(cases)) {
    for (let i = 0; i < 3; i++) await fn(); // warm-up
    const times = [];
    for (let i = 0; i < RUNS; i++) {
      const t0 = performance.now();
      await fn();
      times.push(performance.now() - t0);
    }
    const { median, p90 } = stats(times);
    rows.push({ case: name, 'median ms': median.toFixed(1), 'p90 ms': p90.toFixed(1) });
  }
  console.table(rows);
  const left = im.boundLoopDevices().filter((l) => l.backingFile.startsWith(base));
  if (left.length) throw new Error(`loop devices left: ${left.map((l) => l.path).join(', ')}`);
} finally {
  rmSync(base, { recursive: true, force: true });
}
