#!/usr/bin/env node
// pnpm bench: what each running container costs in memory under nspawnd. Starts 50 busybox containers (booted,
// busybox init + a shell) through nspawnd and measures nspawnd's RSS before and after, plus the helper process
// each container keeps (its supervisor, nspawnd's child): RSS and PSS (shared pages split between sharers).
// systemd-nspawn's own process costs about 7.6 MB per container for comparison.
import { execFileSync } from 'node:child_process';
import { cpSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, scratchDaemon } from './scratch.mjs';

const N = Number(process.env.BENCH_CONTAINERS ?? 50);
if (process.getuid() !== 0) {
  console.error('bench: must run as root');
  process.exit(1);
}
const { varlinkCall } = await import(join(REPO, 'packages/runtime/dist/index.js'));
const d = scratchDaemon('dm-mem-');
const first = join(d.machines, 'dm-mem-0');
execFileSync(join(REPO, 'scripts/make-busybox-tree.sh'), [first]);
for (let i = 1; i < N; i++) cpSync(first, join(d.machines, `dm-mem-${i}`), { recursive: true, verbatimSymlinks: true });

const kb = (pid, field) => {
  try {
    const t = readFileSync(`/proc/${pid}/${field === 'Pss' ? 'smaps_rollup' : 'status'}`, 'utf8');
    const m = new RegExp(`^${field === 'Pss' ? 'Pss' : 'VmRSS'}:\\s+(\\d+) kB`, 'm').exec(t);
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
};
const children = (pid) =>
  readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
    .trim()
    .split(/\s+/)
    .filter(Boolean)
    .map(Number);

const sock = d.sock;
try {
  await d.start();
  // warm it up the same way (one container started and stopped), then settle
  await varlinkCall(sock, 'io.nspawn.Machine.Start', { name: 'dm-mem-0', command: ['/bin/true'], wait: true });
  global.gc?.();
  await new Promise((r) => setTimeout(r, 1500));
  const before = kb(d.pid, 'VmRSS');
  for (let i = 0; i < N; i++) await varlinkCall(sock, 'io.nspawn.Machine.Start', { name: `dm-mem-${i}` });
  await new Promise((r) => setTimeout(r, 3000));
  const after = kb(d.pid, 'VmRSS');
  const helpers = children(d.pid).filter((p) => readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'nspawn-helper');
  const hRss = helpers.reduce((a, p) => a + kb(p, 'VmRSS'), 0);
  const hPss = helpers.reduce((a, p) => a + kb(p, 'Pss'), 0);
  const listed = (await varlinkCall(sock, 'io.systemd.Machine.List', {}, { more: true })).length;
  const mb = (k) => (k / 1024).toFixed(2);
  console.log(`nspawnd memory with ${N} running containers (${listed} listed, ${helpers.length} helpers)`);
  console.log(`nspawnd RSS: ${mb(before)} MB before, ${mb(after)} MB after: +${mb(after - before)} MB, ${mb((after - before) / N)} MB per container`);
  console.log(`helpers: RSS ${mb(hRss / N)} MB, PSS ${mb(hPss / N)} MB per container`);
  const perRss = (after - before + hRss) / N;
  const perPss = (after - before + hPss) / N;
  console.log(`per-container overhead: ${mb(perRss)} MB counting RSS, ${mb(perPss)} MB counting PSS (goal <= 2 MB: ${perRss <= 2048 ? 'met' : perPss <= 2048 ? 'met by PSS' : 'NOT met'}; systemd-nspawn ~7.6 MB)`);
  for (let i = 0; i < N; i++) await varlinkCall(sock, 'io.systemd.Machine.Terminate', { name: `dm-mem-${i}` }).catch(() => {});
  for (let t = 0; t < 100; t++) {
    const left = await varlinkCall(sock, 'io.systemd.Machine.List', {}, { more: true }).catch(() => []);
    if (left.length === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
} finally {
  await d.stop();
}
