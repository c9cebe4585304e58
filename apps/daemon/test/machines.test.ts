/**
 * nspawnd and nspawnctl on busybox trees, as root: start, list, status, show, shell (exit code, stdio), reboot,
 * poweroff, terminate, kill, logs, top, enable + restart, nspawn's own registration, nspawnd killed with -9 (who
 * may call what: people.test.ts).
 */
import { execa, execaSync } from 'execa';
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { registerMachine } from '@nspawn/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusybox, NSPAWN, NSPAWNCTL, requireRoot, TestDaemon, waitFor } from './helpers.js';

let d: TestDaemon;

beforeAll(async () => {
  requireRoot();
  d = new TestDaemon();
  for (const n of ['dm-a', 'dm-b', 'dm-c', 'dm-en']) makeBusybox(join(d.machines, n));
  await d.start({ NSPAWND_LOG_MAX_BYTES: '20000' });
});

afterAll(async () => {
  await d?.cleanup();
});

const leaderOf = (name: string): number => {
  const r = d.ctl(['status', name, '-o', 'json']);
  expect(r.status, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { leader: { pid: number } }).leader.pid;
};

describe('machines nspawnd runs', () => {
  it('starts a machine and lists it, as a table and as JSON', () => {
    const r = d.ctl(['start', 'dm-a']);
    expect(r.status, r.stderr).toBe(0);
    const t = d.ctl(['list']);
    expect(t.stdout).toMatch(/^MACHINE\s+CLASS\s+SERVICE\s+OS\s+VERSION\s+ADDRESSES$/m);
    // a private network (--network-veth): the container's end of the veth has an address, not the host's
    expect(t.stdout).toMatch(/^dm-a\s+container\s+nspawnd\s+busybox\s+1\s+\d+\.\d+\.\d+\.\d+/m);
    expect(t.stdout).toMatch(/1 machines listed\./);
    const nl = d.ctl(['list', '--no-legend']);
    expect(nl.stdout.trim().split('\n')).toHaveLength(1);
    const j = JSON.parse(d.ctl(['list', '-o', 'json']).stdout) as Array<Record<string, unknown>>;
    expect(j).toEqual([{ machine: 'dm-a', class: 'container', service: 'nspawnd', os: 'busybox', version: '1', addresses: expect.any(Array) }]);
    const addresses = j[0]!.addresses as string[];
    expect(addresses.length).toBeGreaterThan(0);
    expect(addresses.some((a) => /^\d+\.\d+\.\d+\.\d+$/.test(a))).toBe(true);
    // -U: PID 1 of the container runs in a user namespace of its own, root mapped to a range that is not the host's 0
    const show = JSON.parse(d.ctl(['status', 'dm-a', '-o', 'json']).stdout) as { leader: { pid: number } };
    const uidMap = readFileSync(`/proc/${show.leader.pid}/uid_map`, 'utf8').trim().split(/\s+/).map(Number);
    expect(uidMap[0]).toBe(0);
    expect(uidMap[1]).toBeGreaterThan(0);
    expect(uidMap[2]).toBe(65536);
    const pretty = d.ctl(['list', '-o', 'json-pretty']).stdout;
    expect(pretty).toContain('\n  {');
  });

  it('status shows the process tree, OS, uptime and the console; -o json the registry entry', () => {
    const r = d.ctl(['status', 'dm-a']);
    expect(r.status, r.stderr).toBe(0);
    const leader = leaderOf('dm-a');
    expect(r.stdout).toMatch(/^dm-a\([0-9a-f]{32}\)$/m);
    expect(r.stdout).toMatch(new RegExp(`Leader: ${leader} \\(init\\)`));
    expect(r.stdout).toMatch(/Since: .*ago/);
    expect(r.stdout).toMatch(/OS: BusyBox \(nspawn default image\)/);
    expect(r.stdout).toMatch(new RegExp(`^\\s+${leader} init$`, 'm'));
    expect(r.stdout).toMatch(/└─\d+ -\/bin\/sh/);
    expect(r.stdout).toMatch(/Console \(last lines\):[\s\S]*BusyBox v/);
    const j = JSON.parse(d.ctl(['status', 'dm-a', '-o', 'json']).stdout) as Record<string, unknown>;
    expect(j).toMatchObject({ name: 'dm-a', class: 'container', service: 'nspawnd', rootDirectory: join(d.machines, 'dm-a'), leader: { pid: leader } });
    expect(j.OSRelease).toContain('ID=busybox');
    const show = d.ctl(['show', 'dm-a']).stdout;
    expect(show).toContain(`Leader=${leader}\n`);
    expect(show).toContain('State=running\n');
  });

  it('applies NAME.nspawn beside the image, as nspawn@.service does', async () => {
    writeFileSync(join(d.machines, 'dm-b.nspawn'), '[Exec]\nEnvironment=DM_FROM_SETTINGS=yes\n');
    try {
      expect(d.ctl(['start', 'dm-b']).status).toBe(0);
      const env = d.ctl(['shell', 'dm-b', '/bin/sh', '-c', "tr '\\0' '\\n' < /proc/1/environ"]).stdout;
      expect(env).toContain('DM_FROM_SETTINGS=yes');
      expect(d.ctl(['terminate', 'dm-b']).status).toBe(0);
      await waitFor(() => !d.list().includes('dm-b'));
    } finally {
      execaSync('rm', ['-f', join(d.machines, 'dm-b.nspawn')]);
    }
  });

  it('says clearly when a machine or image is unknown', () => {
    for (const v of [['status', 'dm-nope'], ['shell', 'dm-nope', 'true'], ['terminate', 'dm-nope'], ['kill', 'dm-nope'], ['poweroff', 'dm-nope']]) {
      const r = d.ctl(v);
      expect(r.status).toBe(1);
      expect(r.stderr.trim()).toBe("No machine 'dm-nope' known.");
    }
    const none = d.ctl(['list'], { env: { NSPAWND_RUNTIME_DIR: join(d.base, 'no-daemon-here') } });
    expect(none.status).toBe(1);
    expect(none.stderr).toBe(`nspawnd is not running (no socket at ${join(d.base, 'no-daemon-here')}/io.systemd.Machine).\n`);
    expect(d.ctl(['frobnicate']).stderr).toBe("Unknown command verb 'frobnicate'.\n");
    const s = d.ctl(['start', 'dm-noimage']);
    expect(s.status).toBe(1);
    expect(s.stderr).toContain("No image 'dm-noimage'");
  });

  it('shell passes the exit code, stdin, stdout and stderr through, in a pipeline', async () => {
    const r = d.ctl(['shell', 'dm-a', '/bin/sh', '-c', 'cat; echo to-err >&2; hostname; exit 42'], { input: 'from stdin\n' });
    expect(r.status).toBe(42);
    expect(r.stdout).toBe('from stdin\ndm-a\n');
    expect(r.stderr).toBe('to-err\n');
    // a real pipeline, nspawnctl in the middle
    const piped = await execa('/bin/sh', ['-c', `printf 'abc\\n' | "$CTL" shell root@dm-a tr a-z A-Z | tr -d '\\n'; echo " rc=$?"`], {
      env: { ...d.env, CTL: NSPAWNCTL },
      extendEnv: false,
      reject: false,
      stripFinalNewline: false,
    });
    expect(piped.stdout).toBe('ABC rc=0\n');
    // in the container's namespaces, as root, in its root
    const ns = d.ctl(['shell', 'dm-a', '/bin/sh', '-c', 'echo $$ $(cat /proc/1/comm) $HOME $USER; ls /']);
    expect(ns.status, ns.stderr).toBe(0);
    expect(ns.stdout).toMatch(/^\d+ init \/root root\n/);
    expect(ns.stdout).toContain('usr');
    const leader = leaderOf('dm-a');
    const nsIds = execaSync('readlink', [`/proc/${leader}/ns/pid`]).stdout.trim();
    const inside = d.ctl(['shell', 'dm-a', '/bin/readlink', '/proc/self/ns/pid']);
    expect(inside.stdout.trim()).toBe(nsIds);
    // death by signal is 128+N
    expect(d.ctl(['shell', 'dm-a', '/bin/sh', '-c', 'kill -9 $$']).status).toBe(137);
    // no such command: 127
    expect(d.ctl(['shell', 'dm-a', '/nonexistent']).status).toBe(127);
  });

  it('shell runs under the container\'s system call filter and no_new_privs, as a descendant of its PID 1 would', () => {
    const status = 'grep -E "^(NoNewPrivs|Seccomp|Seccomp_filters):"';
    const r = d.ctl(['shell', 'dm-a', '/bin/sh', '-c', `${status} /proc/self/status; echo --; ${status} /proc/1/status; swapoff /dev/null`]);
    const [own, pid1] = r.stdout.split('--\n');
    expect(own).toBe(pid1);
    expect(own).toMatch(/^Seccomp:\t2$/m);
    // swapoff is not in the container's filter: EPERM, where a root shell without it gets EINVAL for /dev/null
    expect(r.stderr).toContain('Operation not permitted');
  });

  it('shell runs as another user with USER@NAME', () => {
    const root = join(d.machines, 'dm-a');
    writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\ndmuser:x:1234:1235:u:/tmp:/bin/sh\n');
    const r = d.ctl(['shell', 'dmuser@dm-a', '/bin/sh', '-c', 'id -u; id -g; echo $HOME; pwd']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe('1234\n1235\n/tmp\n/tmp\n');
    const bad = d.ctl(['shell', 'nobody-here@dm-a', 'true']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('Failed to resolve user nobody-here');
  });

  it('a container that reboots is started again (exit 133); one that powers off is gone', async () => {
    const before = leaderOf('dm-a');
    // busybox init: SIGTERM is its reboot
    expect(d.ctl(['kill', 'dm-a', '--kill-whom=leader', '-s', 'SIGTERM']).status).toBe(0);
    await waitFor(() => {
      const r = d.ctl(['status', 'dm-a', '-o', 'json']);
      return r.status === 0 && (JSON.parse(r.stdout) as { leader: { pid: number } }).leader.pid !== before;
    }, 20000);
    expect(readFileSync(join(d.base, 'log/dm-a.log'), 'utf8')).toContain('dm-a ended with status 133');
    // SIGUSR2: busybox init's poweroff (once init runs its shell: before, it has no handler and ignores it)
    await waitFor(() => d.ctl(['status', 'dm-a']).stdout.includes('-/bin/sh'), 10000);
    expect(d.ctl(['kill', 'dm-a', '--kill-whom=leader', '--signal=USR2']).status).toBe(0);
    await waitFor(() => !d.list().includes('dm-a'), 20000);
  });

  it('terminate kills a machine at once; kill sends a signal to all its processes', async () => {
    expect(d.ctl(['start', 'dm-b']).status).toBe(0);
    // WINCH: ignored by busybox init and sleep, trapped by the shell
    writeFileSync(join(d.machines, 'dm-b/trap.sh'), '#!/bin/sh\ntrap "echo got-winch; exit 3" WINCH\necho ready > /ready\nwhile :; do sleep 0.1; done\n', { mode: 0o755 });
    const bg = d.ctlAsync(['shell', 'dm-b', '/trap.sh']);
    await waitFor(() => existsSync(join(d.machines, 'dm-b/ready')), 10000);
    expect(d.ctl(['kill', 'dm-b', '-s', 'WINCH']).status).toBe(0);
    const res = await bg;
    expect(res.stdout).toContain('got-winch');
    expect(res.status).toBe(3);
    expect(d.ctl(['terminate', 'dm-b']).status).toBe(0);
    await waitFor(() => !d.list().includes('dm-b'), 10000);
    expect(d.ctl(['kill', 'dm-b', '--kill-whom=bogus']).stderr).toContain('--kill-whom');
  });

  it('logs shows the console output kept for a machine; it is rotated', async () => {
    expect(d.ctl(['start', 'dm-c']).status).toBe(0);
    const l = d.ctl(['logs', 'dm-c']);
    expect(l.status).toBe(0);
    expect(l.stdout).toContain('-- nspawnd: starting dm-c');
    // fill past the rotation size (20000 bytes in this daemon) from inside: the console is the log
    d.ctl(['shell', 'dm-c', '/bin/sh', '-c', 'i=0; while [ $i -lt 400 ]; do echo console-filler-line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx > /dev/console; i=$((i+1)); done']);
    await waitFor(() => existsSync(join(d.base, 'log/dm-c.log.1')), 15000, 200);
    expect(readFileSync(join(d.base, 'log/dm-c.log.1'), 'utf8')).toContain('console-filler-line-');
    expect(d.ctl(['logs', 'dm-nope']).stderr).toContain("No console log of machine 'dm-nope'");
    // -f follows: a line written later arrives
    const follow = execa(NSPAWNCTL, ['logs', 'dm-c', '-f'], { env: d.env, extendEnv: false, buffer: false, reject: false });
    let got = '';
    follow.stdout.on('data', (x: Buffer) => (got += x.toString()));
    await new Promise((r) => setTimeout(r, 400));
    d.ctl(['shell', 'dm-c', '/bin/sh', '-c', 'echo followed-line-xyz > /dev/console']);
    await waitFor(() => got.includes('followed-line-xyz'), 5000).finally(() => follow.kill());
  });

  it('bind mounts a host directory into a running machine (--read-only, --mkdir)', () => {
    const share = join(d.base, 'share');
    mkdirSync(share);
    writeFileSync(join(share, 'f'), 'shared\n');
    expect(d.ctl(['bind', 'dm-c', share, '/mnt/dm-share']).status).toBe(1); // no mount point, no --mkdir
    const r = d.ctl(['bind', 'dm-c', share, '/mnt/dm-share', '--mkdir', '--read-only']);
    expect(r.status, r.stderr).toBe(0);
    expect(d.ctl(['shell', 'dm-c', '/bin/cat', '/mnt/dm-share/f']).stdout).toBe('shared\n');
    const w = d.ctl(['shell', 'dm-c', '/bin/sh', '-c', 'echo x > /mnt/dm-share/g']);
    expect(w.status).not.toBe(0);
    expect(w.stderr).toMatch(/Read-only file system/);
    // the host's mount table is untouched
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain('/mnt/dm-share');
  });

  it('copy-to and copy-from copy files and trees, refusing to replace without --force', () => {
    const src = join(d.base, 'to-copy');
    mkdirSync(join(src, 'sub'), { recursive: true });
    writeFileSync(join(src, 'sub/a'), 'A');
    expect(d.ctl(['copy-to', 'dm-c', src, '/root/copied']).status).toBe(0);
    expect(d.ctl(['shell', 'dm-c', '/bin/cat', '/root/copied/sub/a']).stdout).toBe('A');
    const again = d.ctl(['copy-to', 'dm-c', src, '/root/copied']);
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/File exists/);
    expect(d.ctl(['copy-to', '--force', 'dm-c', src, '/root/copied']).status).toBe(0);
    d.ctl(['shell', 'dm-c', '/bin/sh', '-c', 'echo from-inside > /root/inside.txt; ln -s /etc/shadow /root/copied/link']);
    const back = join(d.base, 'back.txt');
    expect(d.ctl(['copy-from', 'dm-c', '/root/inside.txt', back]).status).toBe(0);
    expect(readFileSync(back, 'utf8')).toBe('from-inside\n');
    expect(d.ctl(['copy-from', 'dm-c', '/root/inside.txt', back]).stderr).toMatch(/File exists/);
    // a tree with a symlink comes back as a symlink, never as the host file it names
    const tree = join(d.base, 'back-tree');
    expect(d.ctl(['copy-from', 'dm-c', '/root/copied', tree]).status).toBe(0);
    expect(lstatSync(join(tree, 'link')).isSymbolicLink()).toBe(true);
    expect(d.ctl(['copy-from', 'dm-c', '/nonexistent', join(d.base, 'zz')]).status).toBe(1);
    expect(readdirSync(d.base).filter((f) => f.startsWith('.#copy'))).toEqual([]);
  });

  it('top shows tasks, CPU and memory per machine from the cgroups', () => {
    const r = d.ctl(['top']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^MACHINE\s+TASKS\s+%CPU\s+MEMORY$/m);
    expect(r.stdout).toMatch(/^dm-c\s+\d+\s+[\d.]+%\s+[\d.]+M$/m);
  });

  it('nspawn registers and unregisters itself; --register=no and no daemon are silent', async () => {
    const tree = join(d.machines, 'dm-b');
    const run = execa(process.execPath, [NSPAWN, '-q', '-D', tree, '-M', 'dm-term', '/bin/sleep', '3'], { env: d.env, extendEnv: false, stdio: 'ignore', reject: false });
    await waitFor(() => d.list().includes('dm-term'), 10000);
    const j = JSON.parse(d.ctl(['status', 'dm-term', '-o', 'json']).stdout) as Record<string, unknown>;
    expect(j).toMatchObject({ name: 'dm-term', service: 'nspawn', class: 'container', rootDirectory: tree, supervisor: { pid: run.pid } });
    const inside = d.ctl(['shell', 'dm-term', '/bin/cat', '/proc/1/cmdline']);
    expect(inside.stdout).toContain('sleep');
    await run;
    expect(d.list()).not.toContain('dm-term');
    const no = await execa(process.execPath, [NSPAWN, '-q', '--register=no', '-D', tree, '-M', 'dm-noreg', '/bin/sh', '-c', 'sleep 1; exit 5'], { env: d.env, extendEnv: false, reject: false });
    expect(no.exitCode).toBe(5);
    const none = await execa(process.execPath, [NSPAWN, '-q', '-D', tree, '-M', 'dm-nodaemon', '/bin/sh', '-c', 'exit 6'], {
      env: { ...d.env, NSPAWND_RUNTIME_DIR: join(d.base, 'no-daemon-here') },
      extendEnv: false,
      reject: false,
      stripFinalNewline: false,
    });
    expect(none.exitCode).toBe(6);
    expect(none.stderr).toBe('');
  });

  it('lists and shows the addresses of a machine with its own network', async () => {
    const tree = join(d.machines, 'dm-b');
    const run = execa(process.execPath, [NSPAWN, '-q', '--private-network', '-D', tree, '-M', 'dm-net', '/bin/sh', '-c', 'ip link set lo up; ip addr add 10.99.0.7/32 dev lo; touch /net-ready; sleep 5'], { env: d.env, extendEnv: false, stdio: 'ignore', reject: false, forceKillAfterDelay: false });
    try {
      await waitFor(() => existsSync(join(tree, 'net-ready')), 10000);
      const l = d.ctl(['list', '--no-legend']).stdout;
      expect(l).toMatch(/^dm-net\s+container\s+nspawn\s+busybox\s+1\s+10\.99\.0\.7$/m);
      expect(d.ctl(['status', 'dm-net']).stdout).toMatch(/Address: 10\.99\.0\.7/);
      const j = JSON.parse(d.ctl(['status', 'dm-net', '-o', 'json']).stdout) as { addresses: unknown[] };
      expect(j.addresses).toContainEqual({ family: 2, address: [10, 99, 0, 7] });
    } finally {
      run.kill('SIGTERM');
      await run;
      execaSync('rm', ['-f', join(tree, 'net-ready')]);
    }
  });

  it('a name registered twice is refused while the first runs', async () => {
    const tree = join(d.machines, 'dm-b');
    const first = execa(process.execPath, [NSPAWN, '-q', '-D', tree, '-M', 'dm-twice', '/bin/sleep', '2'], { env: d.env, extendEnv: false, stdio: 'ignore', reject: false });
    await waitFor(() => d.list().includes('dm-twice'), 10000);
    const second = await execa(process.execPath, [NSPAWN, '-q', '-D', tree, '-M', 'dm-twice', '/bin/true'], { env: d.env, extendEnv: false, reject: false });
    expect(second.exitCode).toBe(1);
    expect(second.stderr).toMatch(/already running|MachineExists|busy/);
    // the registry itself refuses a second Register of a running name
    // (the caller registering itself: its own PID as the leader would be refused before the name is looked at)
    await expect(registerMachine({ name: 'dm-twice', class: 'container' }, { socket: d.socket })).rejects.toMatchObject({
      error: 'io.systemd.Machine.MachineExists',
    });
    await expect(registerMachine({ name: 'dm twice', class: 'container', leader: process.pid }, { socket: d.socket })).rejects.toMatchObject({
      error: 'org.varlink.service.InvalidParameter',
    });
    await first;
  });
});

describe('the daemon itself', () => {
  // who may talk to it (anyone reads, root changes): test/people.test.ts

  it('enabled machines start with the daemon; running ones survive its restart', async () => {
    expect(d.ctl(['enable', 'dm-en']).status).toBe(0);
    expect(existsSync(join(d.base, 'etc/enabled/dm-en'))).toBe(true);
    expect(d.ctl(['enable', 'dm-noimage']).stderr).toContain("No image 'dm-noimage' known.");
    const cLeader = leaderOf('dm-c');
    await d.stop('SIGTERM');
    await d.start();
    await waitFor(() => d.list().includes('dm-en'), 15000);
    expect(d.list()).toContain('dm-c');
    expect(leaderOf('dm-c')).toBe(cLeader);
    expect(d.ctl(['shell', 'dm-c', '/bin/echo', 'still-here']).stdout).toBe('still-here\n');
    expect(d.ctl(['disable', 'dm-en']).status).toBe(0);
    expect(existsSync(join(d.base, 'etc/enabled/dm-en'))).toBe(false);
    expect(d.ctl(['terminate', 'dm-en']).status).toBe(0);
    await waitFor(() => !d.list().includes('dm-en'), 10000);
  });

  it('killed with -9 in the middle of operations, it loses no machine', async () => {
    expect(d.ctl(['start', 'dm-c']).status).toBe(0); // running already, or now
    const tree = join(d.machines, 'dm-b');
    const term = execa(process.execPath, [NSPAWN, '-q', '-D', tree, '-M', 'dm-k9term', '/bin/sleep', '30'], { env: d.env, extendEnv: false, stdio: 'ignore', reject: false, forceKillAfterDelay: false });
    await waitFor(() => d.list().includes('dm-k9term'), 10000);
    // a start and a burst of calls in flight when the daemon dies
    const starting = d.ctlAsync(['start', 'dm-en']);
    const calls = Array.from({ length: 5 }, () => d.ctlAsync(['list']));
    await new Promise((r) => setTimeout(r, 60));
    await d.stop('SIGKILL');
    await Promise.all([starting, ...calls]);
    expect(readdirSync(join(d.base, 'run/machines')).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    await d.start();
    // whatever was running is listed again; the start either happened (and is found) or never began
    await new Promise((r) => setTimeout(r, 500));
    const names = d.list();
    expect(names).toContain('dm-c');
    expect(names).toContain('dm-k9term');
    const leftovers = () => execaSync('sh', ['-c', `ls -d /sys/fs/cgroup/*/machine.slice/machine-dm\\\\x2den.scope 2>/dev/null | wc -l`], { reject: false }).stdout.trim();
    if (names.includes('dm-en')) expect(d.ctl(['shell', 'dm-en', '/bin/true']).status).toBe(0);
    else
      await waitFor(() => leftovers() === '0', 8000).catch((e: Error) => {
        const procs = execaSync('sh', ['-c', `for f in /sys/fs/cgroup/*/machine.slice/machine-dm\\\\x2den.scope/cgroup.procs; do echo $f; cat $f; done; ls /sys/fs/cgroup/unified/machine.slice/machine-dm\\\\x2den.scope`], { reject: false }).stdout;
        throw new Error(`${e.message}: left ${procs} ${d.output}`);
      }); // nothing half-started was left behind
    // the terminal's nspawn unregisters through the new daemon
    term.kill('SIGTERM');
    await term;
    await waitFor(() => !d.list().includes('dm-k9term'), 10000);
  });
});
