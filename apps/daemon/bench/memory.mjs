#!/usr/bin/env node
// pnpm bench: what each running container costs in memory under nspawnd. Starts 50 busybox containers (booted,
// busybox init + a shell) through nspawnd and measures nspawnd's RSS before and after, plus the helper process
// each container keeps (its supervisor, nspawnd's child): RSS and PSS (shared pages split between sharers).
// systemd-nspawn's own process costs about 7.6 MB per container for comparison.
// BENCH_WEB=1: nspawnd serves its web view (--web), and the view is open on every machine while it is measured: the
// machines page fetched, and one machine page's event stream (console + samples) per container, the charts'
// samples taken meanwhile.
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
const WEB = process.env.BENCH_WEB === '1';
if (WEB) d.env.NSPAWND_WEB = '127.0.0.1:0';
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
  const streams = WEB ? await openView() : [];
  await new Promise((r) => setTimeout(r, WEB ? 10000 : 3000));
  const after = kb(d.pid, 'VmRSS');
  for (const s of streams) s.destroy();
  const helpers = children(d.pid).filter((p) => readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'nspawn-helper');
  const hRss = helpers.reduce((a, p) => a + kb(p, 'VmRSS'), 0);
  const hPss = helpers.reduce((a, p) => a + kb(p, 'Pss'), 0);
  const listed = (await varlinkCall(sock, 'io.systemd.Machine.List', {}, { more: true })).length;
  const mb = (k) => (k / 1024).toFixed(2);
  console.log(`nspawnd memory with ${N} running containers (${listed} listed, ${helpers.length} helpers)${WEB ? `, the web view open on each (${streams.length} event streams)` : ''}`);
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

/** The view as a browser has it open: the machines page, and each machine's page with its event stream. */
async function openView() {
  const http = await import('node:http');
  const { url, token } = JSON.parse(readFileSync(join(d.env.NSPAWND_RUNTIME_DIR, 'web-access.json'), 'utf8'));
  const u = new URL(url);
  const headers = { Cookie: `nspawnd-web-${u.port}=${token}` };
  const get = (path) =>
    new Promise((res, rej) => {
      const r = http.request({ host: u.hostname, port: u.port, path, headers, agent: false }, (resp) => {
        resp.resume();
        resp.on('end', () => res(resp.statusCode));
      });
      r.on('error', rej);
      r.end();
    });
  if ((await get('/api/machines')) !== 200) throw new Error('the web view did not answer');
  const streams = [];
  for (let i = 0; i < N; i++) {
    await get(`/api/machines/dm-mem-${i}`);
    await get(`/api/machines/dm-mem-${i}/stats`);
    streams.push(
      await new Promise((res, rej) => {
        const r = http.request({ host: u.hostname, port: u.port, path: `/api/machines/dm-mem-${i}/events`, headers, agent: false }, (resp) => {
          if (resp.statusCode !== 200) rej(new Error(`event stream: ${resp.statusCode}`));
          resp.on('data', () => {});
          res(r);
        });
        r.on('error', rej);
        r.end();
      }),
    );
  }
  return streams;
}
