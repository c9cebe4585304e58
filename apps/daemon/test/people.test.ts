/**
 * machinectl's parity for people (issue 18, item 5): list, status, show, list-images and image-status work for a
 * user who is not root (run as UID 65534 with setpriv against a daemon this file starts), everything else stays
 * root's (refused by nspawnctl, and by nspawnd itself when a user calls the socket directly); `shell .host`,
 * `shell USER@.host` and `login` without a name reach the host nspawnctl runs on.
 */
import { spawn } from 'node:child_process';
import { chmodSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { execaSync } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusybox, NSPAWNCTL, requireRoot, TestDaemon, waitFor } from './helpers.js';

let d: TestDaemon;
const NAME = 'dm-people';

beforeAll(async () => {
  requireRoot();
  d = new TestDaemon();
  makeBusybox(join(d.machines, NAME));
  // the test's own temporary directory is 0700 (mkdtemp): open it as /run is, so that a user can reach the socket
  chmodSync(d.base, 0o755);
  await d.start();
  const r = d.ctl(['start', NAME]);
  expect(r.status, r.stderr).toBe(0);
}, 60000);

afterAll(async () => {
  await d?.cleanup();
});

/** nspawnctl as UID/GID 65534 (nobody), without supplementary groups and without a code cache of its own */
function asNobody(args: string[]): { status: number | undefined; stdout: string; stderr: string } {
  const r = execaSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', NSPAWNCTL, ...args], {
    env: { ...d.env, NSPAWN_CODE_CACHE: '0', HOME: '/nonexistent' },
    extendEnv: false,
    reject: false,
    timeout: 30000,
    stripFinalNewline: false,
  });
  return { status: r.exitCode, stdout: r.stdout, stderr: r.stderr };
}

describe('a user who is not root', () => {
  it('the socket is open as machined\'s (0666 in a 0755 directory); the records stay root\'s', () => {
    expect(statSync(d.socket).mode & 0o777).toBe(0o666);
    expect(statSync(join(d.base, 'run')).mode & 0o777).toBe(0o755);
    expect(statSync(join(d.base, 'run', 'machines')).mode & 0o777).toBe(0o700);
  });

  it('list, status, show, list-images and image-status work', () => {
    const l = asNobody(['list']);
    expect(l.stderr).toBe('');
    expect(l.status).toBe(0);
    expect(l.stdout).toMatch(new RegExp(`^${NAME}\\s+container\\s+nspawnd\\s+busybox\\s+1\\s`, 'm'));
    expect(l.stdout).toContain('1 machines listed.');
    // the same as root sees
    expect(l.stdout).toBe(d.ctl(['list']).stdout);

    const s = asNobody(['status', NAME]);
    expect(s.status, s.stderr).toBe(0);
    expect(s.stdout).toMatch(new RegExp(`^${NAME}\\([0-9a-f]{32}\\)$`, 'm'));
    expect(s.stdout).toMatch(/Leader: \d+ \(init\)/);
    expect(s.stdout).toMatch(/OS: BusyBox/);
    // the process tree, read from the machine's cgroup (its namespaces are not a user's to read)
    expect(s.stdout).toMatch(/└─\d+ /);

    const sh = asNobody(['show', NAME]);
    expect(sh.status, sh.stderr).toBe(0);
    expect(sh.stdout).toContain(`Name=${NAME}\n`);
    expect(sh.stdout).toContain('State=running\n');

    const li = asNobody(['list-images']);
    expect(li.status, li.stderr).toBe(0);
    expect(li.stdout).toMatch(new RegExp(`^${NAME}\\s+directory\\s+no\\s`, 'm'));

    const is = asNobody(['image-status', NAME]);
    expect(is.status, is.stderr).toBe(0);
    expect(is.stdout).toContain(`Path: ${join(d.machines, NAME)}`);
  });

  it('a machine that does not exist is said so, not refused', () => {
    const r = asNobody(['status', 'dm-nosuch']);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe("No machine 'dm-nosuch' known.\n");
  });

  it('mutating verbs stay root\'s: nspawnctl says so in one line, and nothing changes', () => {
    for (const args of [['terminate', NAME], ['poweroff', NAME], ['start', 'dm-other'], ['shell', NAME, '/bin/true'], ['login'], ['remove', NAME]]) {
      const r = asNobody(args);
      expect(r.status, args.join(' ')).toBe(1);
      expect(r.stderr).toBe('Need to be root: only list, status, show, list-images, image-status, show-image, list-transfers work for other users.\n');
    }
    expect(d.list()).toContain(NAME);
  });

  it('nspawnd refuses them itself (a user calling the socket directly): PermissionDenied, logged', async () => {
    const script = `
      const s = require('net').connect(process.argv[1]);
      const calls = [
        { method: 'io.systemd.Machine.Terminate', parameters: { name: process.argv[2] } },
        { method: 'io.systemd.Machine.Kill', parameters: { name: process.argv[2], signal: 9 } },
        { method: 'io.nspawn.Machine.Start', parameters: { name: 'dm-other' } },
        { method: 'io.systemd.Machine.Register', parameters: { name: 'dm-fake' } },
        { method: 'io.systemd.Machine.List', parameters: { name: process.argv[2] } },
      ];
      let got = '';
      s.on('connect', () => { for (const c of calls) s.write(JSON.stringify(c) + '\\0'); });
      s.on('data', (x) => { got += x; if (got.split('\\0').length > calls.length) { console.log(got); s.end(); } });
      s.on('error', (e) => console.log('error:' + e.code));`;
    const r = execaSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', script, d.socket, NAME], { timeout: 10000, reject: false });
    const replies = r.stdout.trim().split('\0').filter(Boolean).map((x) => JSON.parse(x) as { error?: string; parameters?: Record<string, unknown> });
    expect(replies).toHaveLength(5);
    for (const x of replies.slice(0, 4)) expect(x.error).toBe('org.varlink.service.PermissionDenied');
    expect(replies[4]!.error).toBeUndefined();
    expect(replies[4]!.parameters?.name).toBe(NAME);
    await waitFor(() => d.output.includes('refused io.systemd.Machine.Terminate to UID 65534'), 5000);
    expect(d.list()).toContain(NAME);
    expect(d.list()).not.toContain('dm-other');
  });
});

describe('.host', () => {
  it('shell .host runs the command on the host, as root: exit status and stdio pass through, no $container', () => {
    const r = d.ctl(['shell', '.host', '/bin/sh', '-c', 'read x; echo "got $x $(id -u) ${container:-none} $HOME"; exit 7'], { input: 'line\n' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(7);
    expect(r.stdout).toBe('got line 0 none /root\n');
    // the host's namespaces: the same PID namespace as ours
    const ns = d.ctl(['shell', '.host', '/bin/readlink', '/proc/self/ns/pid']);
    expect(ns.stdout.trim()).toBe(execaSync('readlink', ['/proc/self/ns/pid']).stdout.trim());
  });

  it('shell USER@.host runs it as that user of the host; a user the host lacks is one line', () => {
    const r = d.ctl(['shell', 'nobody@.host', '/bin/sh', '-c', 'id -un; echo $HOME']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe('nobody\n/nonexistent\n');
    const bad = d.ctl(['shell', 'dm-nosuchuser@.host', '/bin/true']);
    expect(bad.status).toBe(1);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toContain('dm-nosuchuser');
  });

  it('shell without a name is the host too (as machinectl shell)', () => {
    const r = d.ctl(['shell'], { input: 'echo $(id -u)-${container:-none}; exit 3\n' });
    expect(r.status).toBe(3);
    expect(r.stdout).toContain('0-none\n');
  });

  it('login without a name: a getty on a new pty of the host; ^] three times ends it', async () => {
    const c = spawn(NSPAWNCTL, ['login'], { env: d.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (x: Buffer) => (out += x.toString()));
    c.stderr.on('data', (x: Buffer) => (out += x.toString()));
    const closed = new Promise<number | null>((r) => c.on('close', r));
    try {
      await waitFor(() => /login: $/m.test(out), 20000);
      // agetty's issue line names a pty of the host, not a console
      expect(out).toMatch(/pts\/\d+/);
      c.stdin.write('\x1d\x1d\x1d');
      const code = await Promise.race([closed, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 10000))]);
      expect(code).not.toBe('timeout');
    } finally {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      await closed;
    }
  });
});
