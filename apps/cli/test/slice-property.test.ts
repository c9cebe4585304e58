/**
 * -S/--slice= and --property= on a host without systemd (this one): nspawn makes the machine's cgroup itself, so the
 * scope goes in the slice, laid out as systemd lays slices out (nt-a-b.slice is nt.slice/nt-a.slice/nt-a-b.slice), and
 * the properties become the scope's cgroup files as systemd's cgroup_context_apply() writes them (v1 controllers on this
 * hybrid host). systemd-nspawn 252 under --register=no --keep-unit ignores both ("Machine and scope registration turned
 * off, ..."); what it shares with us is how it reads them: the slice name's mangling and its notice, compared side by
 * side. Slices made for the run are removed after it.
 *
 * Needs root and /usr/bin/systemd-nspawn; it fails, never skips, without them.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxTree } from './helpers/busybox-tree.js';
import { makeTempDir, requireRootAndSystemdNspawn, runTool, TOOL_ENV } from './helpers/containers.js';

let tmp: { dir: string; remove: () => string[] };
let tree: string;
const name = `nt-slice-${process.pid}`;
const CG = '/sys/fs/cgroup';
const slicesLeft = () => readdirSync(join(CG, 'unified')).filter((d) => d.startsWith('nt') && d.endsWith('.slice'));

beforeAll(() => {
  requireRootAndSystemdNspawn();
  tmp = makeTempDir('nt-slice-');
  tree = makeBusyboxTree(join(tmp.dir, 'tree'), { probe: false });
});
afterAll(() => {
  expect(tmp.remove()).toEqual([]);
});

const run = (args: string[], cmd: string[], tool: 'nspawn' | 'systemd-nspawn' = 'nspawn') =>
  runTool(tool, ['-q', '-D', tree, '-M', name, ...args, ...cmd], { env: TOOL_ENV });
const errLines = (s: string) => s.split('\n').filter((l) => l !== '' && !l.startsWith('Attempted to remove disk file system'));

describe('--slice= and --property= without systemd', () => {
  it('the test can fail: without them the scope is in machine.slice and gets no limits', async () => {
    const r = await run([], ['/bin/sh', '-c', 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.replace(/\r\n/g, '\n')).toMatch(/^\d{10,}\nmax\n$/);
  });

  it('the scope goes in the nested slice while it runs; the slices made for it go afterwards', async () => {
    const before = slicesLeft();
    const running = run(['-S', `nt-${process.pid}-a`], ['/bin/sleep', '2']);
    const scope = join(CG, 'unified', 'nt.slice', `nt-${process.pid}.slice`, `nt-${process.pid}-a.slice`, `machine-${name.replace(/-/g, '\\x2d')}.scope`);
    let seen = false;
    for (let i = 0; i < 150 && !seen; i++) {
      seen = existsSync(scope);
      if (!seen) await new Promise((r) => setTimeout(r, 20));
    }
    const r = await running;
    expect(r.status, r.stderr).toBe(0);
    expect(seen, scope).toBe(true);
    expect(slicesLeft()).toEqual(before);
  });

  it('properties become the scope\'s cgroup files (v1 on this hybrid host), seen from inside', async () => {
    const r = await run(
      ['--property=MemoryMax=64M', '--property=TasksMax=42', '--property=CPUWeight=50', '--property=CPUQuota=20%', '-S', `nt-${process.pid}-b`],
      ['/bin/sh', '-c', 'cd /sys/fs/cgroup; cat memory/memory.limit_in_bytes pids/pids.max cpu/cpu.shares cpu/cpu.cfs_period_us cpu/cpu.cfs_quota_us'],
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.replace(/\r\n/g, '\n')).toBe('67108864\n42\n512\n100000\n20000\n');
    expect(errLines(r.stderr)).toEqual([]);
  });

  it('a property without a cgroup file here, or whose controller the host lacks, is a notice; the run goes on', async () => {
    const r = await run(['--property=Description=box', '--property=MemoryHigh=1G'], ['/bin/true']);
    expect(r.status, r.stderr).toBe(0);
    expect(errLines(r.stderr)).toEqual([
      'Description= has no effect on a host without systemd (no unit to set it on), ignored.',
      'MemoryHigh= has no effect: the cgroup controller it needs is not available on this host.',
    ]);
  });

  it('a bad property or slice is refused before anything runs, with systemd\'s words', async () => {
    for (const [args, words] of [
      [['--property=Foo=1'], 'Unknown assignment: Foo=1'],
      [['--property=MemoryMax'], 'Not an assignment: MemoryMax'],
      [['--property=TasksMax=lots'], 'Failed to parse TasksMax=lots: Invalid argument'],
      [['-S', 'x.service'], "Failed to allocate scope: Unit name 'x.service' is not a slice"],
      [['-S', 'nt--x'], 'Failed to allocate scope: Slice name nt--x.slice is not valid.'],
    ] as const) {
      const r = await run([...args], ['/bin/true']);
      expect(r.status, `${args}`).toBe(1);
      expect(errLines(r.stderr), `${args}`).toEqual([words]);
    }
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(tree);
  });

  it('the slice name is mangled as 252 mangles it, with the same notice (side by side)', async () => {
    const slice = `nt/${process.pid}`;
    const ours = await run(['-S', slice], ['/bin/true']);
    const theirs = await run(['-S', slice], ['/bin/true'], 'systemd-nspawn');
    expect(ours.status, ours.stderr).toBe(0);
    expect(theirs.status, theirs.stderr).toBe(0);
    const notice = `Invalid unit name "${slice}" escaped as "nt-${process.pid}" (maybe you should use systemd-escape?).`;
    expect(errLines(ours.stderr)).toEqual([notice]);
    expect(errLines(theirs.stderr)[0]).toBe(notice);
    // (252 then says it ignores them: its scope registration is off under --register=no --keep-unit)
    expect(errLines(theirs.stderr)[1]).toBe('Machine and scope registration turned off, --slice= and --property= settings will have no effect.');
  });
});
