/**
 * nspawnd does not trust what a caller says about processes (issue 15, section 3), and its varlink server holds
 * against hostile messages: a leader must exist, not be PID 1, not be the caller, and live in a PID namespace of
 * its own unless the caller registers itself (leader left out); leaders and supervisors are pinned, so a recycled
 * PID is never signalled; Kill and Terminate reach only the machine's own processes. As root, with a private nspawnd.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { varlinkCall, VarlinkDecoder } from '@nspawn/runtime';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { REPO, requireRoot, TestDaemon, waitFor } from './helpers.js';

let d: TestDaemon;
const started: ChildProcess[] = [];
/** processes not our children (the PID 1 of a namespace made by unshare): killed by PID after each test */
const leaders: number[] = [];

/** Forgets every machine without signalling it (a cleanup that never reaches a process the test did not make). */
async function unregisterAll(): Promise<void> {
  for (const name of await names().catch(() => [] as string[])) await call('io.systemd.Machine.Unregister', { name }).catch(() => {});
}

beforeAll(async () => {
  requireRoot();
  d = new TestDaemon();
  await d.start();
});

function killOurs(): void {
  for (const c of started.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const pid of leaders.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

afterEach(async () => {
  if (d?.proc) await unregisterAll();
  killOurs();
});

afterAll(async () => {
  if (d?.proc) await unregisterAll();
  killOurs();
  await d?.cleanup();
});

const call = (method: string, params: Record<string, unknown>) => varlinkCall(d.socket, method, params, { timeoutMs: 10000 });
/** a process that ended between the two reads is not alive (its /proc entry can go at any moment) */
const alive = (pid: number) => {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
};
const startTime = (pid: number) => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[19];

function track(c: ChildProcess): ChildProcess {
  started.push(c);
  c.on('error', () => {});
  return c;
}

/** a process of the host's PID namespace */
function hostProcess(): ChildProcess {
  return track(spawn('sleep', ['1000'], { stdio: 'ignore' }));
}

/** unshare(1) with a new PID namespace whose PID 1 runs SCRIPT; resolves with unshare's PID and PID 1's host PID */
async function nsProcess(script = 'exec sleep 1000', killChild = true): Promise<{ unshare: ChildProcess; leader: number }> {
  const u = track(spawn('unshare', ['--pid', '--fork', ...(killChild ? ['--kill-child'] : []), 'sh', '-c', script], { stdio: 'ignore' }));
  let leader = 0;
  await waitFor(() => {
    const kids = readFileSync(`/proc/${u.pid}/task/${u.pid}/children`, 'utf8').trim();
    if (kids === '') return false;
    leader = Number(kids.split(/\s+/)[0]);
    return readFileSync(`/proc/${leader}/cmdline`, 'utf8').startsWith('sleep');
  }, 5000);
  leaders.push(leader);
  return { unshare: u, leader };
}

/** Waits for PID to be gone (reaped). */
async function gone(c: ChildProcess): Promise<void> {
  if (c.exitCode === null && c.signalCode === null) await new Promise((r) => c.once('exit', r));
  await waitFor(() => !existsSync(`/proc/${c.pid}`), 5000);
}

/**
 * A new process that gets exactly PID: the kernel's next PID is set through /proc/sys/kernel/ns_last_pid and a shell
 * forks right after (microseconds, so other processes on the machine seldom take it first; tried again until it
 * works). The process (a sleep) is killed after the test.
 */
function recycle(pid: number): number {
  for (let i = 0; i < 1000; i++) {
    const r = spawnSync('sh', ['-c', `echo ${pid - 1} > /proc/sys/kernel/ns_last_pid; sleep 1000 </dev/null >/dev/null 2>&1 & echo $!`], { encoding: 'utf8' });
    const got = Number(r.stdout.trim());
    if (got > 0) leaders.push(got);
    if (got === pid) return pid;
    if (got > 0) process.kill(got, 'SIGKILL');
  }
  throw new Error(`could not get PID ${pid} again`);
}

const invalid = (parameter: string) => ({ error: 'org.varlink.service.InvalidParameter', parameters: { parameter } });
async function names(): Promise<string[]> {
  return (await d.ctlAsync(['list', '--no-legend'])).stdout.split('\n').map((l) => l.split(/\s+/)[0]!).filter(Boolean);
}

describe('Register checks the leader it is given', () => {
  it('refuses PID 1, as leader or leaderProcessId, and as supervisor', async () => {
    await expect(call('io.systemd.Machine.Register', { name: 'dm-pid1', class: 'container', leader: 1 })).rejects.toMatchObject(invalid('leader'));
    await expect(call('io.systemd.Machine.Register', { name: 'dm-pid1', class: 'container', leaderProcessId: { pid: 1 } })).rejects.toMatchObject(invalid('leaderProcessId'));
    const { leader } = await nsProcess();
    await expect(call('io.systemd.Machine.Register', { name: 'dm-pid1', class: 'container', leader, supervisor: 1 })).rejects.toMatchObject(invalid('supervisor'));
    expect(await names()).not.toContain('dm-pid1');
  });

  it("refuses the caller's own PID given as the leader", async () => {
    await expect(call('io.systemd.Machine.Register', { name: 'dm-self-pid', class: 'container', leader: process.pid })).rejects.toMatchObject(invalid('leader'));
    expect(await names()).not.toContain('dm-self-pid');
  });

  it("refuses a host process (the host's PID namespace), nspawnd itself, and a PID that does not exist", async () => {
    const h = hostProcess();
    await expect(call('io.systemd.Machine.Register', { name: 'dm-host', class: 'container', leader: h.pid })).rejects.toMatchObject(invalid('leader'));
    await expect(call('io.systemd.Machine.Register', { name: 'dm-host', class: 'container', leader: d.proc!.pid })).rejects.toMatchObject(invalid('leader'));
    const pidMax = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
    await expect(call('io.systemd.Machine.Register', { name: 'dm-host', class: 'container', leader: pidMax + 1 })).rejects.toMatchObject(invalid('leader'));
    expect(await names()).not.toContain('dm-host');
    expect(alive(h.pid!)).toBe(true);
  });

  it('refuses wrong types, bad ids, relative root directories, a leader given twice differently, a supervisor that is not the caller or above the leader', async () => {
    const { leader } = await nsProcess();
    const h = hostProcess();
    const base = { name: 'dm-types', class: 'container', leader };
    const bad: Array<[Record<string, unknown>, string]> = [
      [{ ...base, name: 5 }, 'name'],
      [{ ...base, name: 'dm_under' }, 'name'],
      [{ ...base, name: '..' }, 'name'],
      [{ ...base, class: 'bogus' }, 'class'],
      [{ ...base, leader: 'x' }, 'leader'],
      [{ ...base, leader: -5 }, 'leader'],
      [{ ...base, leader: 1.5 }, 'leader'],
      [{ ...base, leaderProcessId: { pid: leader + 100000 } }, 'leaderProcessId'],
      [{ ...base, id: 'not-an-id' }, 'id'],
      [{ ...base, id: 5 }, 'id'],
      [{ ...base, rootDirectory: 'relative/dir' }, 'rootDirectory'],
      [{ ...base, ifIndices: 'x' }, 'ifIndices'],
      [{ ...base, ifIndices: [0] }, 'ifIndices'],
      [{ ...base, UIDShift: 'x' }, 'UIDShift'],
      [{ ...base, supervisor: h.pid }, 'supervisor'],
    ];
    for (const [p, field] of bad) await expect(call('io.systemd.Machine.Register', p), JSON.stringify(p)).rejects.toMatchObject(invalid(field));
    expect(await names()).not.toContain('dm-types');
  });

  it('accepts a leader in a PID namespace of its own; the same leader twice is refused', async () => {
    const { leader, unshare } = await nsProcess();
    await call('io.systemd.Machine.Register', { name: 'dm-ns', class: 'container', leader, supervisor: unshare.pid, id: 'ab'.repeat(16), rootDirectory: '/' });
    const [m] = await call('io.systemd.Machine.List', { name: 'dm-ns' });
    expect(m).toMatchObject({ name: 'dm-ns', leader: { pid: leader }, supervisor: { pid: unshare.pid }, id: 'ab'.repeat(16) });
    await expect(call('io.systemd.Machine.Register', { name: 'dm-ns2', class: 'container', leader })).rejects.toMatchObject({ error: 'io.systemd.Machine.MachineExists' });
    await call('io.systemd.Machine.Unregister', { name: 'dm-ns' });
    expect(alive(leader)).toBe(true);
  });

  it('with the leader left out, the caller registers itself (machined does the same); Kill reaches it alone, not its cgroup neighbours', async () => {
    const sibling = hostProcess();
    const script = `import { varlinkCall } from ${JSON.stringify(join(REPO, 'packages/runtime/dist/index.js'))};
await varlinkCall(process.argv[1], 'io.systemd.Machine.Register', { name: 'dm-selfreg', class: 'container' });
console.log('registered'); setInterval(() => {}, 1000);`;
    const self = track(spawn(process.execPath, ['--input-type=module', '-e', script, d.socket], { stdio: ['ignore', 'pipe', 'inherit'] }));
    let out = '';
    self.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    await waitFor(() => out.includes('registered'), 10000);
    const [m] = await call('io.systemd.Machine.List', { name: 'dm-selfreg' });
    expect(m!.leader).toMatchObject({ pid: self.pid });
    await call('io.systemd.Machine.Kill', { name: 'dm-selfreg', signal: 9 });
    await gone(self);
    expect(alive(sibling.pid!)).toBe(true);
    expect(alive(d.proc!.pid!)).toBe(true);
    expect(alive(process.pid)).toBe(true);
  });
});

describe('Kill and Terminate reach only the machine', () => {
  it("Kill (whom all) signals every process of the machine's PID namespace and nothing else", async () => {
    const { leader } = await nsProcess('sleep 1000 & exec sleep 1000');
    const other = await nsProcess();
    const h = hostProcess();
    await call('io.systemd.Machine.Register', { name: 'dm-kill', class: 'container', leader });
    const inNs = readFileSync(`/proc/${leader}/task/${leader}/children`, 'utf8').trim().split(/\s+/).map(Number);
    expect(inNs).toHaveLength(1);
    // SIGTERM: the namespace's PID 1 has no handler for it and ignores it, the other process ends
    await call('io.systemd.Machine.Kill', { name: 'dm-kill', signal: 15 });
    await waitFor(() => !alive(inNs[0]!), 5000);
    expect(alive(leader)).toBe(true);
    await call('io.systemd.Machine.Kill', { name: 'dm-kill', signal: 9 });
    await waitFor(() => !alive(leader), 5000);
    expect(alive(other.leader)).toBe(true);
    expect(alive(h.pid!)).toBe(true);
    expect(alive(d.proc!.pid!)).toBe(true);
  });

  it('Terminate kills the leader and nothing else', async () => {
    const { leader } = await nsProcess('sleep 1000 & exec sleep 1000');
    const h = hostProcess();
    await call('io.systemd.Machine.Register', { name: 'dm-term', class: 'container', leader });
    await call('io.systemd.Machine.Terminate', { name: 'dm-term' });
    await waitFor(() => !alive(leader), 5000);
    expect(alive(h.pid!)).toBe(true);
  });

  it('a leader that died and whose PID was given to another process: the machine is gone, the new process never signalled', async () => {
    const { leader, unshare } = await nsProcess();
    await call('io.systemd.Machine.Register', { name: 'dm-recycled', class: 'container', leader });
    unshare.kill('SIGKILL');
    process.kill(leader, 'SIGKILL');
    await gone(unshare);
    await waitFor(() => !existsSync(`/proc/${leader}`), 5000);
    const imposter = recycle(leader);
    for (const [m, p] of [
      ['io.systemd.Machine.Kill', { name: 'dm-recycled', signal: 15 }],
      ['io.systemd.Machine.Kill', { name: 'dm-recycled', signal: 15, whom: 'leader' }],
      ['io.systemd.Machine.Terminate', { name: 'dm-recycled' }],
      ['io.nspawn.Machine.Poweroff', { name: 'dm-recycled' }],
    ] as const)
      await expect(call(m, p), m).rejects.toMatchObject({ error: 'io.systemd.Machine.NoSuchMachine' });
    await new Promise((r) => setTimeout(r, 200));
    expect(alive(imposter)).toBe(true);
    expect(await names()).not.toContain('dm-recycled');
  });

  it('a supervisor that died and whose PID was given to another process is never signalled', async () => {
    const { leader, unshare } = await nsProcess('exec sleep 1000', false);
    const supervisor = unshare.pid!;
    await call('io.systemd.Machine.Register', { name: 'dm-sup', class: 'container', leader, supervisor });
    const before = startTime(leader);
    unshare.kill('SIGKILL'); // the leader lives on, reparented
    await gone(unshare);
    const imposter = recycle(supervisor);
    await expect(call('io.systemd.Machine.Kill', { name: 'dm-sup', signal: 15, whom: 'supervisor' })).rejects.toMatchObject({ error: 'io.systemd.Machine.NotAvailable' });
    await new Promise((r) => setTimeout(r, 200));
    expect(alive(imposter)).toBe(true);
    expect(startTime(leader)).toBe(before);
    await call('io.systemd.Machine.Terminate', { name: 'dm-sup' });
    await waitFor(() => !alive(leader), 5000);
  });

  it('after a restart of nspawnd, machines are found again only if their leader is the same process', async () => {
    const a = await nsProcess();
    const b = await nsProcess();
    await call('io.systemd.Machine.Register', { name: 'dm-keep', class: 'container', leader: a.leader });
    await call('io.systemd.Machine.Register', { name: 'dm-lost', class: 'container', leader: b.leader });
    await d.stop('SIGKILL');
    let imposter: number;
    try {
      b.unshare.kill('SIGKILL');
      process.kill(b.leader, 'SIGKILL');
      await gone(b.unshare);
      await waitFor(() => !existsSync(`/proc/${b.leader}`), 5000);
      imposter = recycle(b.leader);
    } finally {
      await d.start();
    }
    expect(await names()).toEqual(['dm-keep']);
    await expect(call('io.systemd.Machine.Kill', { name: 'dm-lost', signal: 15 })).rejects.toMatchObject({ error: 'io.systemd.Machine.NoSuchMachine' });
    await call('io.systemd.Machine.Kill', { name: 'dm-keep', signal: 9 });
    await waitFor(() => !alive(a.leader), 5000);
    expect(alive(imposter)).toBe(true);
  });
});

describe('the varlink service against hostile messages', () => {
  it('Object.prototype names are unknown methods', async () => {
    for (const m of ['toString', '__proto__', 'constructor', 'hasOwnProperty', 'io.systemd.Machine.constructor'])
      await expect(call(m, {}), m).rejects.toMatchObject({ error: 'org.varlink.service.MethodNotFound' });
  });

  it('parameters that are not an object, and fields of the wrong type, are InvalidParameter', async () => {
    const raw = (text: string) =>
      new Promise<unknown[]>((resolve) => {
        const s = connect(d.socket);
        const dec = new VarlinkDecoder();
        const got: unknown[] = [];
        s.on('data', (c: Buffer) => {
          got.push(...dec.push(c));
          s.end();
        });
        s.on('error', () => {});
        s.on('close', () => resolve(got));
        s.write(text);
      });
    for (const p of ['[]', '"x"', '7'])
      for (const m of ['io.systemd.Machine.List', 'io.systemd.Machine.Kill', 'io.systemd.Machine.Register'])
        expect(await raw(`{"method":"${m}","parameters":${p}}\0`), `${m} ${p}`).toEqual([invalid('parameters')]);
    // null: no parameters, as systemd reads it
    expect(await raw('{"method":"io.systemd.Machine.Register","parameters":null}\0')).toEqual([invalid('name')]);
    await expect(call('io.systemd.Machine.Kill', { name: 'dm-x', signal: 'TERM' })).rejects.toMatchObject(invalid('signal'));
    await expect(call('io.systemd.Machine.Kill', { name: 5, signal: 15 })).rejects.toMatchObject(invalid('name'));
    await expect(call('io.systemd.Machine.Kill', { name: 'dm-x', signal: 15, whom: 5 })).rejects.toMatchObject(invalid('whom'));
    await expect(call('io.systemd.Machine.List', { name: 'a/b' })).rejects.toMatchObject(invalid('name'));
    await expect(call('io.systemd.Machine.List', { pid: 'x' })).rejects.toMatchObject(invalid('pid'));
    await expect(call('io.nspawn.Machine.Start', { name: 'dm-x', command: 'ls' })).rejects.toMatchObject(invalid('command'));
    await expect(call('io.nspawn.Machine.Start', { name: 'dm-x', command: [1] })).rejects.toMatchObject(invalid('command'));
    await expect(call('io.nspawn.Machine.Start', { name: '..' })).rejects.toMatchObject(invalid('name'));
  });

  it('a 17 MiB message is refused and a 400 MB one does not grow nspawnd', async () => {
    const rss = () => Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${d.proc!.pid}/status`, 'utf8'))![1]) * 1024;
    const flood = (bytes: number, end: boolean) =>
      new Promise<{ sent: number; replies: unknown[] }>((resolve) => {
        const s = connect(d.socket);
        const dec = new VarlinkDecoder();
        const replies: unknown[] = [];
        const chunk = Buffer.alloc(1024 * 1024, 0x61);
        let sent = 0;
        let done = false;
        const finish = () => {
          if (done) return;
          done = true;
          s.destroy();
          resolve({ sent, replies });
        };
        s.on('data', (c: Buffer) => replies.push(...dec.push(c)));
        s.on('error', finish);
        s.on('close', finish);
        s.on('connect', () => {
          s.write('{"method":"io.systemd.Machine.List","parameters":{"name":"');
          const pump = () => {
            while (!done && sent < bytes) {
              sent += chunk.length;
              if (!s.write(chunk)) return void s.once('drain', pump);
            }
            if (end) s.write('"}}\0');
            setTimeout(finish, 2000);
          };
          pump();
        });
      });
    const before = rss();
    const big = await flood(17 * 1024 * 1024, true);
    expect(big.replies).toEqual([]);
    const huge = await flood(400 * 1024 * 1024, false);
    expect(huge.sent).toBeLessThan(64 * 1024 * 1024);
    await new Promise((r) => setTimeout(r, 500));
    expect(rss() - before).toBeLessThan(64 * 1024 * 1024);
    expect(await call('org.varlink.service.GetInfo', {})).toHaveLength(1);
  });
});
