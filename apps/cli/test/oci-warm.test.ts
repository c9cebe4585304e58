/**
 * nspawn-oci's warm monitor (@nspawn/oci monitor-server.ts, the front end's native/oci-warm.c): the first `start`
 * under a root brings it up, the next creates are its (no Node start of their own); what it may not serve goes the
 * cold way; errors read as a monitor of its own gives them; it ends with its root, when idle, on stopMonitor(); a
 * created container dies with it. Root: busybox bundles and the runtime's state under a temp directory.
 */
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { createConnection } from 'node:net';
import { execa } from 'execa';
import { MONITOR_DIR, monitorSocket, stopMonitor } from '@nspawn/oci';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxBundle, NSPAWN_OCI, OCI_ENV as ENV, type BusyboxBundle } from './helpers/oci-runtime.js';

let base: BusyboxBundle['base'] | undefined;
let bundle = '';
let state = '';

beforeAll(async () => {
  ({ base, bundle, state } = await busyboxBundle('nspawn-oci-warm-', ['sh', '-c', 'echo "ran $$ $(cat /proc/1/comm)"']));
}, 60_000);

afterAll(async () => {
  if (!base) return;
  for (const id of existsSync(state) ? readdirSync(state) : []) await execa(NSPAWN_OCI, ['--root', state, 'delete', '-f', id], { env: ENV, reject: false });
  await stopMonitor(state);
  expect(monitorPid(state)).toBeUndefined();
  expect(base.remove()).toEqual([]);
});

/** nspawn-oci --root ROOT ARGS, its stdout and stderr into OUT (the container's too: it keeps them open) */
async function oci(root: string, args: string[], env: Record<string, string> = {}, out = join(base!.dir, 'out')) {
  const fd = openSync(out, 'a');
  try {
    return await new Promise<number | null>((res) => {
      const p = spawn(NSPAWN_OCI, ['--root', root, ...args], { env: { ...ENV, ...env }, stdio: ['ignore', fd, fd] });
      p.on('close', (code) => res(code));
    });
  } finally {
    closeSync(fd);
  }
}

const record = (id: string) => JSON.parse(readFileSync(join(state, id, 'state.json'), 'utf8')) as { pid: number; monitor: number };
const cmdline = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return undefined;
  }
};
const ppid = (pid: number) => Number(/^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);

/** the PID of ROOT's warm monitor (a process of this test's: the runtime it ran started it) */
function monitorPid(root: string): number | undefined {
  for (const p of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    const c = cmdline(Number(p));
    if (c?.includes('__monitor-server') && c[c.indexOf('--root') + 1] === root) return Number(p);
  }
  return undefined;
}

/** whether ROOT's warm monitor takes connections */
const serves = (root: string) =>
  new Promise<boolean>((res) => {
    const c = createConnection(monitorSocket(root));
    c.on('connect', () => {
      c.destroy();
      res(true);
    });
    c.on('error', () => res(false));
  });

async function until<T>(what: () => T | undefined | false, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = what();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what.toString()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('the warm monitor', () => {
  it('the first start brings it up (out of the caller\'s cgroups); the next create is its: the helper is the container\'s monitor, the output and the end as before', async () => {
    const out = join(base!.dir, 'first');
    expect(await oci(state, ['create', '-b', bundle, 'w1'], {}, out)).toBe(0);
    // created the cold way: its monitor is a Node process of its own
    expect(cmdline(record('w1').monitor)).toContain('__monitor');
    expect(existsSync(monitorSocket(state))).toBe(false);
    expect(await oci(state, ['start', 'w1'], {}, out)).toBe(0);
    const server = await until(() => monitorPid(state));
    await until(() => existsSync(monitorSocket(state)));
    // in the root cgroup of every hierarchy, not in ours
    for (const l of readFileSync(`/proc/${server}/cgroup`, 'utf8').trim().split('\n')) expect(l, `cgroup of the warm monitor ${server}`).toMatch(/:\/$/);

    expect(await oci(state, ['create', '-b', bundle, 'w2'], {}, out)).toBe(0);
    const r = record('w2');
    // the helper holds it (the front end's child): the record names it as the monitor, and the server is not it
    expect(r.monitor).not.toBe(server);
    expect(cmdline(r.monitor)?.[0]).toBe('nspawn-helper');
    expect(ppid(r.pid)).toBe(r.monitor);
    expect(await oci(state, ['start', 'w2'], {}, out)).toBe(0);
    await until(() => !existsSync(`/proc/${r.pid}`) || readFileSync(`/proc/${r.pid}/stat`, 'utf8').split(' ')[2] === 'Z');
    for (const id of ['w1', 'w2']) expect(await oci(state, ['delete', id], {}, out)).toBe(0);
    // each ran as PID 1 of its own, under the same words
    expect(readFileSync(out, 'utf8').trim().split('\n').sort()).toEqual(['ran 1 sh', 'ran 1 sh']);
    expect(readdirSync(state)).toEqual([]);
    expect(monitorPid(state)).toBe(server);
  });

  it('a create it may not serve as a monitor of its own would (another environment) goes the cold way', async () => {
    await until(() => monitorPid(state));
    expect(await oci(state, ['create', '-b', bundle, 'w3'], { NSPAWN_OCI_TEST: 'other' })).toBe(0);
    expect(cmdline(record('w3').monitor)).toContain('__monitor');
    expect(await oci(state, ['delete', '-f', 'w3'])).toBe(0);
    expect(readdirSync(state)).toEqual([]);
  });

  it('a failed create says what a monitor of its own says, and leaves nothing', async () => {
    await until(() => monitorPid(state));
    // a PATH without node: uname only (bin/nspawn-oci may ask it the architecture)
    const noNode = join(base!.dir, 'nonode');
    if (!existsSync(noNode)) {
      mkdirSync(noNode);
      symlinkSync('/usr/bin/uname', join(noNode, 'uname'));
    }
    const bad = join(base!.dir, 'bad');
    mkdirSync(join(bad, 'rootfs'), { recursive: true });
    for (const [what, config] of [
      ['malformed', '{"ociVersion": '],
      ['no process', JSON.stringify({ ociVersion: '1.0.2', root: { path: 'rootfs' } })],
    ]) {
      writeFileSync(join(bad, 'config.json'), config!);
      const said: string[] = [];
      // warm with no node on the PATH (a cold create could not start its monitor: the answer is the warm monitor's),
      // then cold
      for (const env of [{ PATH: noNode }, { NSPAWN_OCI_MONITOR_IDLE: '0' }] as Array<Record<string, string>>) {
        const out = join(base!.dir, `bad-${said.length}`);
        expect(await oci(state, ['create', '-b', bad, 'w4'], env, out), what).toBe(1);
        said.push(readFileSync(out, 'utf8'));
        expect(readdirSync(state), what).toEqual([]);
      }
      expect(said[0], what).toBe(said[1]);
      expect(said[0], what).not.toBe('');
    }
    rmSync(bad, { recursive: true });
  });

  it('a created container dies with its warm monitor; the next start brings a new one up', async () => {
    const server = await until(() => monitorPid(state));
    expect(await oci(state, ['create', '-b', bundle, 'w5'])).toBe(0);
    const r = record('w5');
    expect(r.monitor).not.toBe(server);
    process.kill(server, 'SIGKILL');
    await until(() => !existsSync(`/proc/${r.monitor}`) || readFileSync(`/proc/${r.monitor}/stat`, 'utf8').split(' ')[2] === 'Z');
    await until(() => !existsSync(`/proc/${r.pid}`) || readFileSync(`/proc/${r.pid}/stat`, 'utf8').split(' ')[2] === 'Z');
    expect(await oci(state, ['start', 'w5'])).toBe(1);
    expect(await oci(state, ['delete', 'w5'])).toBe(0);
    // its socket is left: the next create finds nobody there (the cold way), its start a new monitor
    expect(await oci(state, ['create', '-b', bundle, 'w6'])).toBe(0);
    expect(cmdline(record('w6').monitor)).toContain('__monitor');
    expect(await oci(state, ['start', 'w6'])).toBe(0);
    const next = await until(() => monitorPid(state));
    expect(next).not.toBe(server);
    // (it took the socket over)
    for (let i = 0; !(await serves(state)); i++) {
      expect(i, 'the new warm monitor takes no connections').toBeLessThan(100);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await oci(state, ['delete', '-f', 'w6'])).toBe(0);
  });

  it('ends when idle ($NSPAWN_OCI_MONITOR_IDLE), when its root is removed, and on stopMonitor()', async () => {
    expect(await stopMonitor(state)).toBe(true);
    expect(monitorPid(state)).toBeUndefined();
    expect(existsSync(monitorSocket(state))).toBe(false);
    expect(await stopMonitor(state)).toBe(false);
    // idle for a second
    expect(await oci(state, ['create', '-b', bundle, 'w7'], { NSPAWN_OCI_MONITOR_IDLE: '1' })).toBe(0);
    expect(await oci(state, ['start', 'w7'], { NSPAWN_OCI_MONITOR_IDLE: '1' })).toBe(0);
    await until(() => monitorPid(state));
    await until(() => monitorPid(state) === undefined, 4000);
    expect(existsSync(monitorSocket(state))).toBe(false);
    expect(await oci(state, ['delete', '-f', 'w7'])).toBe(0);
    // its root removed
    const other = join(base!.dir, 'other');
    mkdirSync(other);
    expect(await oci(other, ['create', '-b', bundle, 'w8'])).toBe(0);
    expect(await oci(other, ['start', 'w8'])).toBe(0);
    const pid = await until(() => monitorPid(other));
    const sock = monitorSocket(other);
    expect(await oci(other, ['delete', '-f', 'w8'])).toBe(0);
    rmSync(other, { recursive: true });
    await until(() => !existsSync(`/proc/${pid}`), 3000);
    expect(existsSync(sock)).toBe(false);
    // its socket removed: it ends, and leaves no empty directory of sockets behind
    expect(await oci(state, ['create', '-b', bundle, 'w9'])).toBe(0);
    expect(await oci(state, ['start', 'w9'])).toBe(0);
    const last = await until(() => monitorPid(state));
    await until(() => existsSync(monitorSocket(state)));
    expect(await oci(state, ['delete', '-f', 'w9'])).toBe(0);
    rmSync(monitorSocket(state));
    await until(() => !existsSync(`/proc/${last}`), 3000);
    expect(existsSync(MONITOR_DIR) ? readdirSync(MONITOR_DIR) : ['(none)'], 'what is left in MONITOR_DIR').not.toEqual([]);
  });
});
