/**
 * --pivot-root=NEW[:OLD] and PivotRoot= side by side with systemd-nspawn 252 (pivot_root_parse(), setup_pivot_root(),
 * src/nspawn/nspawn-mount.c): both tools run the same probe in fresh copies of a tree whose /sysroot is the OS to run.
 * What the container sees must match: its root is NEW, the tree is at OLD or gone, what the root lists; the tree must
 * be left alike (base_filesystem_create() works in NEW), with nothing mounted and no /tmp/nspawn-pivot-* left by us.
 *
 * 252 moves the -D directory itself to OLD, which the kernel refuses (EINVAL) unless the directory is a mount point:
 * the cases with OLD bind the tree onto itself first; the plain-directory case is a known difference (runtime README).
 *
 * Needs root and /usr/bin/systemd-nspawn; it fails, never skips, without them.
 */
import { chmodSync, copyFileSync, mkdirSync, readdirSync, rmdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execaSync } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, mountsUnder, requireRootAndSystemdNspawn, runTool, type Tool, TOOL_ENV, TOOLS, treeListing } from './helpers/containers.js';

/** A tree with a busybox OS in /sysroot (and /sysroot/oldroot), and an outer /usr and marker that NEW hides. */
function pivotTree(dir: string): void {
  const os = join(dir, 'sysroot');
  for (const d of ['usr/bin', 'usr/lib', 'etc', 'oldroot']) mkdirSync(join(os, d), { recursive: true, mode: 0o755 });
  copyFileSync('/bin/busybox', join(os, 'usr/bin/busybox'));
  chmodSync(join(os, 'usr/bin/busybox'), 0o755);
  for (const tool of ['sh', 'cat', 'ls', 'echo', 'true']) symlinkSync('busybox', join(os, 'usr/bin', tool));
  symlinkSync('usr/bin', join(os, 'bin'));
  writeFileSync(join(os, 'usr/lib/os-release'), 'ID=busybox\nNAME=BusyBox\n');
  writeFileSync(join(os, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(join(os, 'etc/marker'), 'inner marker\n');
  mkdirSync(join(dir, 'usr'), { mode: 0o755 });
  writeFileSync(join(dir, 'outer-marker'), 'outer marker\n');
}

const PROBE = [
  'cat /proc/self/mountinfo',
  'echo ---',
  'cat /etc/marker /outer-marker /oldroot/outer-marker 2>&1',
  'echo ---',
  'ls -1a / /oldroot 2>&1',
].join('\n');

/** The container's mounts at / and /oldroot: mount point, root (the tree made generic), fs type. */
function rootMounts(mountinfo: string, tree: string): string[] {
  const out: string[] = [];
  for (const line of mountinfo.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!pre || !post) continue;
    const f = pre.split(' ');
    if (!['/', '/oldroot'].includes(f[4]!)) continue;
    out.push(`${f[4]} root=${f[3]!.split(tree).join('TREE')} ${post.split(' ')[0]} ${f[5]}`);
  }
  return out.sort();
}

interface Seen {
  status: number | null;
  mounts: string[];
  rest: string;
  stderr: string;
  listing: string[];
}

let tmp: { dir: string; remove: () => string[] };
const pivotTemps = () => readdirSync('/tmp').filter((n) => n.startsWith('nspawn-pivot-'));
let tempBefore: string[];
beforeAll(() => {
  requireRootAndSystemdNspawn();
  tmp = makeTempDir('nt-pivot-');
  tempBefore = pivotTemps();
});
afterAll(() => {
  expect(tmp.remove()).toEqual([]);
});

let runNo = 0;
/** Runs the probe under TOOL in a fresh tree (a mount point of its own with MOUNTED), with ARGS. */
async function probe(tool: Tool, args: string[], opts: { mounted?: boolean; command?: string[] } = {}): Promise<Seen> {
  const dir = join(tmp.dir, `run${++runNo}-${tool}`, 'tree');
  mkdirSync(dir, { recursive: true });
  pivotTree(dir);
  if (opts.mounted) {
    execaSync('mount', ['--bind', dir, dir]);
    execaSync('mount', ['--make-private', dir]);
  }
  const before = pivotTemps();
  try {
    const r = await runTool(tool, ['-q', '-D', dir, ...args, ...(opts.command ?? ['/usr/bin/sh', '-c', PROBE])], { env: TOOL_ENV });
    const [mountinfo = '', ...rest] = r.stdout.replace(/\r\n/g, '\n').split('---\n');
    return {
      status: r.status,
      mounts: rootMounts(mountinfo, dir),
      rest: rest.join('---\n'),
      stderr: r.stderr
        .split('\n')
        .filter((l) => l !== '' && !l.startsWith('Attempted to remove disk file system') && !l.startsWith('Short read while reading cgroup mode'))
        .map((l) => l.replace(/ \([A-Z]+\)$/, '').split(dir).join('TREE').replace(/\/tmp\/nspawn-pivot-[A-Za-z0-9]{6}/g, '/tmp/nspawn-pivot-XXXXXX'))
        .join('\n'),
      listing: treeListing(dir),
    };
  } finally {
    if (opts.mounted) execaSync('umount', [dir]);
    // 252 leaves its temporary directory behind when a move fails: only those, empty, are removed here
    if (tool === 'systemd-nspawn') for (const n of pivotTemps()) if (!before.includes(n)) rmdirSync(join('/tmp', n));
  }
}

async function both(args: string[], opts: { mounted?: boolean; command?: string[] } = {}): Promise<Record<Tool, Seen>> {
  const seen = {} as Record<Tool, Seen>;
  for (const tool of TOOLS) seen[tool] = await probe(tool, args, opts);
  return seen;
}

describe('--pivot-root= as systemd-nspawn 252 (setup_pivot_root)', () => {
  it('the test can fail: without --pivot-root the root is the tree', async () => {
    const s = await probe('nspawn', [], { command: ['/sysroot/usr/bin/sh', '-c', `PATH=/sysroot/usr/bin; ${PROBE}; true`] });
    expect(s.status, s.stderr).toBe(0);
    expect(s.mounts).toEqual([expect.stringMatching(/^\/ root=TREE \w+ rw/)]);
    expect(s.rest).toContain('outer marker');
    expect(s.listing).toContain('proc 755 0:0 dir');
  });

  it('NEW: the root is /sysroot, the tree is gone, the base file system is made in NEW', async () => {
    const seen = await both(['--pivot-root=/sysroot']);
    expect(seen['systemd-nspawn'].status, seen['systemd-nspawn'].stderr).toBe(0);
    expect(seen.nspawn).toEqual(seen['systemd-nspawn']);
    expect(seen.nspawn.mounts).toEqual([expect.stringMatching(/^\/ root=TREE\/sysroot \w+ rw/)]);
    expect(seen.nspawn.rest).toContain('inner marker');
    expect(seen.nspawn.rest).toContain("cat: can't open '/outer-marker'");
    expect(seen.nspawn.listing).toContain('sysroot/proc 755 0:0 dir');
    expect(seen.nspawn.listing).not.toContain('proc 755 0:0 dir');
  });

  it('NEW:OLD on a directory that is a mount point: the tree at /oldroot inside NEW', async () => {
    const seen = await both(['--pivot-root=/sysroot:/oldroot'], { mounted: true });
    expect(seen['systemd-nspawn'].status, seen['systemd-nspawn'].stderr).toBe(0);
    expect(seen.nspawn).toEqual(seen['systemd-nspawn']);
    expect(seen.nspawn.mounts).toEqual([expect.stringMatching(/^\/ root=TREE\/sysroot /), expect.stringMatching(/^\/oldroot root=TREE /)]);
    expect(seen.nspawn.rest).toContain('outer marker');
    expect(seen.nspawn.rest).toMatch(/\/oldroot:\n(.*\n)*outer-marker\n(.*\n)*sysroot\n/);
  });

  it('OLD missing inside NEW: refused alike, with 252\'s words', async () => {
    const seen = await both(['--pivot-root=/sysroot:/nope'], { mounted: true });
    for (const tool of TOOLS) expect(seen[tool].status, tool).toBe(1);
    expect(seen.nspawn.stderr).toBe('Failed to mount TREE (type n/a) on /tmp/nspawn-pivot-XXXXXX/nope (MS_MOVE ""): No such file or directory');
    expect(seen.nspawn.stderr).toBe(seen['systemd-nspawn'].stderr);
  });

  it('NEW without /usr (or without os-release with -b): refused alike', async () => {
    for (const args of [['--pivot-root=/nope'], ['--pivot-root=/outer-marker'], ['-b', '--pivot-root=/nope']]) {
      const seen = await both(args, { command: args[0] === '-b' ? [] : ['/bin/true'] });
      for (const tool of TOOLS) expect(seen[tool].status, `${tool} ${args}`).toBe(1);
      expect(seen.nspawn.stderr, `${args}`).toBe(seen['systemd-nspawn'].stderr);
      expect(seen.nspawn.stderr).toMatch(/^Directory TREE(\/nope)? doesn't look like/);
      expect(seen.nspawn.listing).toEqual(seen['systemd-nspawn'].listing);
    }
  });

  it('bad values are refused at parse time alike', async () => {
    for (const v of ['relative', '/new:old', '']) {
      const seen = await both([`--pivot-root=${v}`], { command: ['/bin/true'] });
      for (const tool of TOOLS) expect(seen[tool].status, `${tool} ${v}`).toBe(1);
      expect(seen.nspawn.stderr, v).toBe(seen['systemd-nspawn'].stderr);
      expect(seen.nspawn.stderr).toBe(`Failed to parse --pivot-root= argument ${v}: Invalid argument`);
    }
  });

  it('a known difference (runtime README): NEW:OLD on a plain directory fails under 252 (EINVAL), works here', async () => {
    const seen = await both(['--pivot-root=/sysroot:/oldroot']);
    expect(seen['systemd-nspawn'].status).toBe(1);
    expect(seen['systemd-nspawn'].stderr).toBe('Failed to mount TREE (type n/a) on /tmp/nspawn-pivot-XXXXXX/oldroot (MS_MOVE ""): Invalid argument');
    expect(seen.nspawn.status, seen.nspawn.stderr).toBe(0);
    expect(seen.nspawn.mounts).toEqual([expect.stringMatching(/^\/ root=TREE\/sysroot /), expect.stringMatching(/^\/oldroot root=TREE /)]);
  });

  it('with -U (idmapped root), NEW is idmapped too', async () => {
    const s = await probe('nspawn', ['-U', '--pivot-root=/sysroot:/oldroot'], { mounted: true });
    expect(s.status, s.stderr).toBe(0);
    expect(s.mounts).toEqual([expect.stringMatching(/^\/ root=TREE\/sysroot \w+ rw,.*idmapped/), expect.stringMatching(/^\/oldroot root=TREE \w+ rw,.*idmapped/)]);
    expect(s.rest).toContain('outer marker');
  });

  it('PivotRoot= in a trusted .nspawn file', async () => {
    const name = `nt-pivot-${process.pid}`;
    const file = `/run/systemd/nspawn/${name}.nspawn`;
    mkdirSync('/run/systemd/nspawn', { recursive: true });
    writeFileSync(file, '[Exec]\nPivotRoot=/sysroot\n');
    try {
      const seen = await both(['-M', name]);
      expect(seen['systemd-nspawn'].status, seen['systemd-nspawn'].stderr).toBe(0);
      expect(seen.nspawn).toEqual(seen['systemd-nspawn']);
      expect(seen.nspawn.mounts).toEqual([expect.stringMatching(/^\/ root=TREE\/sysroot /)]);
    } finally {
      rmSync(file, { force: true });
    }
  });

  it('nothing stays mounted and no temporary directory of ours stays in /tmp', () => {
    expect(mountsUnder(tmp.dir)).toEqual([]);
    expect(pivotTemps()).toEqual(tempBefore);
  });
});
