/**
 * nspawnd on a systemd host (issue 18, item 2), inside tools/systemd-host's booted Debian 12: machined answers there,
 * so nspawnd defers to it. A machine run by systemd-nspawn 252 (registered with machined, never with nspawnd) is
 * listed by `nspawnctl list` exactly as `machinectl list` lists it, also for a user who is not root; status shows
 * machined's unit; terminate and poweroff go through machined; without nspawnd, nspawnctl's read-only verbs ask
 * machined itself. The host, its nspawnd and every machine go at the end.
 */
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { bootSystemdHost, INNER_TREE, type SystemdHost } from '@nspawn/systemd-host';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NSPAWNCTL, NSPAWND, requireRoot } from './helpers.js';

let host: SystemdHost;
let daemon: ChildProcess | undefined;
let daemonOut = '';
const machines: ChildProcess[] = [];

/** nspawnd's own directories inside the host (its /run is the host's tmpfs, gone with it) */
const ENV = {
  NSPAWND_RUNTIME_DIR: '/run/mh-nspawnd',
  NSPAWND_CONFIG_DIR: '/run/mh-nspawnd-etc',
  NSPAWND_LOG_DIR: '/run/mh-nspawnd-log',
  NSPAWND_MACHINES_DIR: '/var/lib/machines',
  NSPAWN_CODE_CACHE: '0',
};

const ctl = (args: string[], opts: { asNobody?: boolean } = {}) =>
  host.exec([...(opts.asNobody ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] : []), NSPAWNCTL, ...args], { env: ENV });
/** the rows of a `list --no-legend`, blanks squeezed */
const rows = (text: string) =>
  text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => l.trim().split(/\s+/).join(' '));

async function until(what: string, f: () => Promise<boolean>, ms = 30000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** systemd-nspawn 252 inside the host, registered with machined (its default), running until terminated */
async function referenceMachine(name: string, script = 'exec sleep 600'): Promise<void> {
  machines.push(host.spawn(['systemd-nspawn', '-q', '-D', INNER_TREE, '-M', name, '-n', '/bin/sh', '-c', script], { scope: true }));
  await until(`machine ${name} in machined`, async () => /State=running/.test((await host.exec(['machinectl', 'show', name])).stdout));
}

beforeAll(async () => {
  requireRoot();
  host = await bootSystemdHost({ name: 'mh-sdctl' });
  daemon = host.spawn(['node', NSPAWND], { scope: true, env: ENV });
  daemon.stdout?.on('data', (x: Buffer) => (daemonOut += x.toString()));
  daemon.stderr?.on('data', (x: Buffer) => (daemonOut += x.toString()));
  await until('nspawnd to listen', async () => daemonOut.includes('listening on'), 60000);
}, 240000);

afterAll(async () => {
  for (const m of machines) if (m.exitCode === null && m.signalCode === null) m.kill('SIGKILL');
  if (daemon && daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGTERM');
  await host?.shutdown();
}, 120000);

describe('nspawnd beside machined', () => {
  it('says that it defers to machined', () => {
    expect(daemonOut).toContain('a systemd host: machined is the registry');
  });

  it('nspawnctl list shows what machinectl list shows: a machine of systemd-nspawn 252, and none', async () => {
    const empty = await ctl(['list', '--no-legend']);
    expect(empty.stderr).toBe('');
    expect(empty.stdout).toBe('');
    await referenceMachine('mh-sd');
    const ours = await ctl(['list', '--no-legend']);
    expect(ours.code, ours.stderr).toBe(0);
    const theirs = await host.run(['machinectl', 'list', '--no-legend', '--no-pager']);
    expect(rows(theirs)).toHaveLength(1);
    expect(rows(ours.stdout)).toEqual(rows(theirs));
    expect(rows(ours.stdout)[0]).toMatch(/^mh-sd container systemd-nspawn /);
    // and the count line
    expect((await ctl(['list'])).stdout).toContain('1 machines listed.');
  });

  it('a user who is not root lists the same', async () => {
    const r = await ctl(['list', '--no-legend'], { asNobody: true });
    expect(r.code, r.stderr).toBe(0);
    expect(rows(r.stdout)).toEqual(rows(await host.run(['machinectl', 'list', '--no-legend', '--no-pager'])));
  });

  it('status and show read machined: its unit, leader, service and root directory', async () => {
    const show = await host.run(['machinectl', 'show', 'mh-sd']);
    const leader = /^Leader=(\d+)$/m.exec(show)![1]!;
    const s = await ctl(['status', 'mh-sd']);
    expect(s.code, s.stderr).toBe(0);
    expect(s.stdout).toMatch(/Unit: machine-mh\\x2dsd\.scope/);
    expect(s.stdout).toContain(`Leader: ${leader} (`);
    expect(s.stdout).toMatch(/Service: systemd-nspawn; class container/);
    expect(s.stdout).toContain(`Root: ${INNER_TREE}`);
    expect(s.stdout).toMatch(/sleep 600/);
    const ours = (await ctl(['show', 'mh-sd'])).stdout;
    for (const k of ['Name', 'Unit', 'Leader', 'Class', 'Service', 'RootDirectory', 'State'])
      expect(ours, k).toContain(new RegExp(`^${k}=.*$`, 'm').exec(show)![0]);
  });

  it('terminate goes through machined: the machine is gone for machinectl too', async () => {
    const r = await ctl(['terminate', 'mh-sd']);
    expect(r.code, r.stderr).toBe(0);
    await until('mh-sd to go', async () => (await host.run(['machinectl', 'list', '--no-legend', '--no-pager'])) === '');
    expect((await ctl(['list', '--no-legend'])).stdout).toBe('');
    const again = await ctl(['terminate', 'mh-sd']);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe("No machine 'mh-sd' known.\n");
  });

  it('kill and poweroff go through machined too', async () => {
    // a leader (PID 1 of its namespace: only signals it handles reach it) that ends on SIGRTMIN+4, as an init powers off,
    // and tells SIGUSR1 (a kill) by a file
    await referenceMachine('mh-sd2', 'trap "touch /tmp/got-usr1" USR1; trap "exit 0" 38; while :; do sleep 0.1; done');
    const k = await ctl(['kill', '--kill-whom=leader', '-s', 'SIGUSR1', 'mh-sd2']);
    expect(k.code, k.stderr).toBe(0);
    const leader = /^Leader=(\d+)$/m.exec(await host.run(['machinectl', 'show', 'mh-sd2']))![1]!;
    await until('SIGUSR1 to reach the leader', async () => (await host.exec(['test', '-e', `/proc/${leader}/root/tmp/got-usr1`])).code === 0);
    expect(rows((await ctl(['list', '--no-legend'])).stdout)[0]).toMatch(/^mh-sd2 /);
    const p = await ctl(['poweroff', 'mh-sd2']);
    expect(p.code, p.stderr).toBe(0);
    await until('mh-sd2 to go', async () => (await host.run(['machinectl', 'list', '--no-legend', '--no-pager'])) === '');
  });

  it('nspawnd\'s own features stay: its image store lists the host\'s images', async () => {
    const r = await ctl(['list-images', '--no-legend']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^inner\s+directory\s/m);
    expect(join(ENV.NSPAWND_MACHINES_DIR, 'inner')).toBe(INNER_TREE);
  });

  it('without nspawnd, nspawnctl\'s read-only verbs ask machined itself: the same list, for root and not', async () => {
    await referenceMachine('mh-sd3');
    // stop this nspawnd (Debian's minbase has no pgrep: /proc, and the shell's kill; systemd-run ran node by its path)
    const killed = await host.run(['sh', '-c', `for p in /proc/[0-9]*; do if tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -q '^[^ ]*/node ${NSPAWND} '; then echo \${p#/proc/}; kill -TERM \${p#/proc/}; fi; done`]);
    const all = await host.run(['sh', '-c', `for p in /proc/[0-9]*; do echo "\${p#/proc/}: $(tr '\\0' ' ' < $p/cmdline 2>/dev/null)"; done`]);
    expect(killed.trim(), all).not.toBe('');
    await until('nspawnd to stop', async () => (await host.exec(['test', '-e', join(ENV.NSPAWND_RUNTIME_DIR, 'io.systemd.Machine')])).code !== 0);
    const theirs = rows(await host.run(['machinectl', 'list', '--no-legend', '--no-pager']));
    expect(theirs).toHaveLength(1);
    for (const asNobody of [false, true]) {
      const r = await ctl(['list', '--no-legend'], { asNobody });
      expect(r.code, r.stderr).toBe(0);
      expect(rows(r.stdout)).toEqual(theirs);
    }
    const s = await ctl(['status', 'mh-sd3'], { asNobody: true });
    expect(s.code, s.stderr).toBe(0);
    expect(s.stdout).toMatch(/Unit: machine-mh\\x2dsd3\.scope/);
    expect((await ctl(['status', 'mh-nosuch'])).stderr).toBe("No machine 'mh-nosuch' known.\n");
    // what changes needs nspawnd
    const t = await ctl(['terminate', 'mh-sd3']);
    expect(t.code).toBe(1);
    expect(t.stderr).toContain('nspawnd is not running');
    await host.run(['machinectl', 'terminate', 'mh-sd3']);
  });
});
