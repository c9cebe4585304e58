#!/usr/bin/env node
// pnpm bench, second part: boot-to-ready of a Debian 12 tree (scripts/make-debian-tree.sh) under nspawn -b and under
// systemd-nspawn 252 -b, measured in one run, interleaved, as root. "Ready" is the READY=1 each tool sends to its own
// $NOTIFY_SOCKET with --notify-ready=yes, that is when systemd in the container has finished starting up (all boot
// jobs done: multi-user.target reached, the login prompt up). After each boot the container is powered off with
// SIGRTMIN+4 to its PID 1 (X_NSPAWN_LEADER_PID from the tool's own notification) and must exit 0.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inReferenceCgroup, report } from '../../../scripts/bench-report.mjs';

const REPO = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const RUNS = Number(process.env.BENCH_BOOT_RUNS ?? 5);
const WARMUP = 1;
const SIGRTMIN = 34;

if (process.getuid() !== 0) {
  console.error('bench: must run as root');
  process.exit(1);
}
// (systemd-nspawn --keep-unit splits its caller's cgroup: the bench runs in one of its own)
await inReferenceCgroup();

/**
 * A datagram socket at PATH that reports each message with the time it arrived: test/fixtures/notify-listener.c,
 * compiled to BIN (Node cannot receive unix datagrams).
 */
function listen(path, bin) {
  execFileSync('gcc', ['-O1', '-o', bin, join(REPO, 'apps/cli/test/fixtures/notify-listener.c')]);
  const child = spawn(bin, [path], { stdio: ['ignore', 'pipe', 'inherit'] });
  let buf = '';
  const waiters = [];
  const messages = [];
  child.stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const at = process.hrtime.bigint();
      messages.push({ at, msg: line === 'listening' ? line : Buffer.from(line.split('\t')[1], 'hex').toString('utf8') });
      for (const w of waiters.splice(0)) w();
    }
  });
  const next = (pred, what, timeoutMs = 60000) =>
    new Promise((resolvePromise, reject) => {
      const timer = setTimeout(() => reject(new Error(`bench: no ${what} within ${timeoutMs} ms`)), timeoutMs);
      const check = () => {
        const i = messages.findIndex(pred);
        if (i >= 0) {
          clearTimeout(timer);
          resolvePromise(messages.splice(0, i + 1).at(-1));
        } else waiters.push(check);
      };
      check();
    });
  return { child, next };
}

const dir = mkdtempSync('/var/tmp/nspawn-bench-boot-');
let listener;
try {
  const trees = { nspawn: join(dir, 'deb-ns'), 'systemd-nspawn': join(dir, 'deb-sd') };
  const haveSd = existsSync('/usr/bin/systemd-nspawn');
  if (!haveSd) {
    console.warn('bench: systemd-nspawn is not installed (apt-get install systemd-container); measuring nspawn alone');
    delete trees['systemd-nspawn'];
  }
  for (const t of Object.values(trees)) execFileSync(join(REPO, 'scripts/make-debian-tree.sh'), [t], { stdio: ['ignore', 'ignore', 'inherit'] });
  const sock = join(dir, 'notify.sock');
  listener = listen(sock, join(dir, 'notify-listener'));
  await listener.next((m) => m.msg === 'listening', 'listener');

  const commands = {
    nspawn: [process.execPath, join(REPO, 'apps/cli/bin/nspawn')],
    'systemd-nspawn': ['/usr/bin/systemd-nspawn'],
  };
  const boot = async (tool) => {
    const [cmd, ...pre] = commands[tool];
    const args = [...pre, '--register=no', '--keep-unit', '-q', '--console=read-only', '--notify-ready=yes', '-D', trees[tool], '-b'];
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NOTIFY_SOCKET: sock } });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise((r) => child.on('close', (code) => r(code)));
    try {
      const leader = await listener.next((m) => /X_NSPAWN_LEADER_PID=\d+/.test(m.msg), `${tool}: leader PID`);
      const pid1 = Number(/X_NSPAWN_LEADER_PID=(\d+)/.exec(leader.msg)[1]);
      const ready = await listener.next((m) => m.msg.split('\n').includes('READY=1'), `${tool}: READY=1`);
      process.kill(pid1, SIGRTMIN + 4);
      const code = await exited;
      if (code !== 0) throw new Error(`bench: ${tool} exited ${code} after SIGRTMIN+4: ${stderr}`);
      await listener.next((m) => m.msg.startsWith('STOPPING=1'), `${tool}: STOPPING=1`, 5000);
      return Number(ready.at - t0) / 1e6;
    } catch (e) {
      child.kill('SIGKILL');
      await exited;
      throw e;
    }
  };

  const times = Object.fromEntries(Object.keys(trees).map((k) => [k, []]));
  for (let i = 0; i < WARMUP + RUNS; i++)
    for (const tool of Object.keys(trees)) {
      const ms = await boot(tool);
      if (i >= WARMUP) times[tool].push(ms);
    }
  report(`boot-to-ready (READY=1 with --notify-ready=yes) of a Debian 12 tree, ${RUNS} runs each, interleaved (ms)`, times, { digits: 1, goal: 1 });

} finally {
  listener?.child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}
