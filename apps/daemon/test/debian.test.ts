/**
 * nspawnd with a booting Debian 12 (systemd as PID 1): start, status, shell, login on a new pty (agetty + login),
 * reboot and poweroff the way machinectl sends them (SIGINT and SIGRTMIN+4 to the leader).
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeDebian, NSPAWNCTL, requireRoot, TestDaemon, waitFor } from './helpers.js';

let d: TestDaemon;
const NAME = 'dm-deb';

beforeAll(async () => {
  requireRoot();
  d = new TestDaemon();
  await makeDebian(join(d.machines, NAME));
  // root may log in without a password (login test)
  const shadow = join(d.machines, NAME, 'etc/shadow');
  writeFileSync(shadow, readFileSync(shadow, 'utf8').replace(/^root:[^:]*:/m, 'root::'));
  await d.start();
}, 300000);

afterAll(async () => {
  await d?.cleanup();
});

const leader = () => (JSON.parse(d.ctl(['status', NAME, '-o', 'json']).stdout) as { leader: { pid: number } }).leader.pid;
const booted = () => {
  const r = d.ctl(['shell', NAME, '/bin/systemctl', 'is-system-running']);
  return r.status === 0 || /running|degraded/.test(r.stdout);
};

describe('Debian through nspawnd', () => {
  it('boots; status shows systemd, the OS and the console', async () => {
    expect(d.ctl(['start', NAME]).status).toBe(0);
    await waitFor(booted, 60000, 250);
    const s = d.ctl(['status', NAME]).stdout;
    expect(s).toMatch(/Leader: \d+ \(systemd\)/);
    expect(s).toMatch(/OS: Debian GNU\/Linux 12 \(bookworm\)/);
    expect(s).toMatch(/systemd-journald/);
    const l = d.ctl(['list']).stdout;
    expect(l).toMatch(/^dm-deb\s+container\s+nspawnd\s+debian\s+12\s/m);
  });

  it('shell: exit code and stdio of a command in the booted system', () => {
    const r = d.ctl(['shell', NAME, '/bin/bash', '-c', 'read x; echo "got $x"; hostname; exit 9'], { input: 'line\n' });
    expect(r.status).toBe(9);
    expect(r.stdout).toBe(`got line\n${NAME}\n`);
  });

  it('login: a getty on a new pty of the container, then a root shell', async () => {
    const c = spawn(NSPAWNCTL, ['login', NAME], { env: d.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (x: Buffer) => (out += x.toString()));
    await waitFor(() => /login: $/m.test(out), 20000);
    expect(out).toMatch(/Debian GNU\/Linux 12 dm-deb pts\/\d+/);
    c.stdin.write('root\n');
    await waitFor(() => /# $/m.test(out), 20000);
    c.stdin.write('echo LOGGED-IN-$((6*7)); tty; exit\n');
    const code = await new Promise<number | null>((r) => c.on('close', r));
    expect(out).toContain('LOGGED-IN-42');
    expect(out).toMatch(/\/dev\/pts\/\d+/);
    expect(code).toBe(0);
  });

  it('reboot restarts it (a new leader); poweroff ends it', async () => {
    const before = leader();
    expect(d.ctl(['reboot', NAME]).status).toBe(0);
    await waitFor(() => {
      try {
        return leader() !== before;
      } catch {
        return false;
      }
    }, 60000, 250);
    await waitFor(booted, 60000, 250);
    expect(readFileSync(join(d.base, 'log', `${NAME}.log`), 'utf8')).toContain(`${NAME} ended with status 133`);
    expect(d.ctl(['poweroff', NAME]).status).toBe(0);
    await waitFor(() => !d.list().includes(NAME), 60000, 250);
    expect(readFileSync(join(d.base, 'log', `${NAME}.log`), 'utf8')).toMatch(/dm-deb ended with status 0\n?$/);
  });
});
