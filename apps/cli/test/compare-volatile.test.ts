/**
 * --volatile=yes|state|overlay and Volatile= side by side with systemd-nspawn 252 (setup_volatile_mode(),
 * src/nspawn/nspawn-mount.c): both tools run the same probe in fresh copies of the same merged-/usr tree. What the
 * container sees must match: the mounts at /, /usr and /var (file system, source, read-only or not, the tmpfs and
 * overlay options), which writes succeed, what the root holds; the tree must be unchanged afterwards under both, and
 * nothing may stay mounted. A tree whose /bin is a directory (no merged /usr) or a file is refused by `yes` with
 * 252's words.
 *
 * Needs root and /usr/bin/systemd-nspawn; it fails, never skips, without them.
 */
import { chmodSync, copyFileSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, mountsUnder, requireRootAndSystemdNspawn, runTool, type Tool, TOOL_ENV, TOOLS, treeListing } from './helpers/containers.js';

/** A merged-/usr busybox tree with the top-level directories a read-only root needs, and markers in /etc and /var. */
function mergedTree(dir: string, bin: 'symlink' | 'directory' | 'file' | 'none' = 'symlink'): void {
  for (const d of ['usr/bin', 'usr/sbin', 'usr/lib', 'etc', 'var/lib', 'tmp', 'proc', 'sys', 'dev', 'run', 'root'])
    mkdirSync(join(dir, d), { recursive: true, mode: 0o755 });
  copyFileSync('/bin/busybox', join(dir, 'usr/bin/busybox'));
  chmodSync(join(dir, 'usr/bin/busybox'), 0o755);
  for (const tool of ['sh', 'cat', 'ls', 'echo', 'true']) symlinkSync('busybox', join(dir, 'usr/bin', tool));
  writeFileSync(join(dir, 'usr/lib/os-release'), 'ID=busybox\nNAME=BusyBox\n');
  writeFileSync(join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(join(dir, 'etc/group'), 'root:x:0:\n');
  writeFileSync(join(dir, 'etc/marker'), 'etc marker\n');
  writeFileSync(join(dir, 'var/lib/marker'), 'var marker\n');
  if (bin === 'symlink') symlinkSync('usr/bin', join(dir, 'bin'));
  else if (bin === 'directory') mkdirSync(join(dir, 'bin'), { mode: 0o755 });
  else if (bin === 'file') writeFileSync(join(dir, 'bin'), '');
  symlinkSync('usr/lib', join(dir, 'lib'));
  symlinkSync('usr/sbin', join(dir, 'sbin'));
}

const PROBE = [
  'cat /proc/self/mountinfo',
  'echo ---',
  'cat /etc/marker /var/lib/marker 2>&1',
  'echo ---',
  'for f in /new-file /etc/marker /etc/new-file /var/new-file /var/lib/marker /usr/new-file; do',
  '  if ( echo written > $f ) 2>/dev/null; then echo "$f writable"; else echo "$f read-only"; fi',
  'done',
  'echo ---',
  'ls -1a /',
].join('\n');

/**
 * The container's mounts at /, /usr and /var from its mountinfo: mount point, root, fs type, source, per-mount
 * options, super-block options; the tree's path (and the overlay's temporary directory) made generic.
 */
function volatileMounts(mountinfo: string, tree: string): string[] {
  const out: string[] = [];
  for (const line of mountinfo.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!pre || !post) continue;
    const f = pre.split(' ');
    const mp = f[4]!;
    if (!['/', '/usr', '/var'].includes(mp)) continue;
    const [fstype, source, superOpts] = post.split(' ');
    const generic = (s: string) => s.split(tree).join('TREE').replace(/\/tmp\/nspawn-volatile-[A-Za-z0-9]{6}/g, '/tmp/nspawn-volatile-XXXXXX');
    out.push(`${mp} root=${generic(f[3]!)} ${fstype} ${source} ${f[5]} ${generic(superOpts ?? '')}`);
  }
  return out;
}

interface Seen {
  status: number | null;
  mounts: string[];
  rest: string;
  stderr: string;
  unchanged: boolean;
}

let tmp: { dir: string; remove: () => string[] };
const leftoverTemp = () => readdirSync('/tmp').filter((n) => n.startsWith('nspawn-volatile-'));
let tempBefore: string[];
beforeAll(() => {
  requireRootAndSystemdNspawn();
  tmp = makeTempDir('nt-volatile-');
  tempBefore = leftoverTemp();
});
afterAll(() => {
  expect(tmp.remove()).toEqual([]);
});

let runNo = 0;
/** Runs the probe under TOOL in a fresh copy of a tree made by MAKE, with ARGS. */
async function probe(
  tool: Tool,
  args: string[],
  make: (dir: string) => void = mergedTree,
  command = ['/usr/bin/sh', '-c', PROBE],
  env: NodeJS.ProcessEnv = TOOL_ENV,
): Promise<Seen> {
  const dir = join(tmp.dir, `run${++runNo}-${tool}`, 'tree');
  mkdirSync(dir, { recursive: true });
  make(dir);
  const before = treeListing(dir);
  const r = await runTool(tool, ['-q', '-D', dir, ...args, ...command], { env });
  // (the console is a pseudo-terminal under both: \r\n)
  const [mountinfo = '', ...rest] = r.stdout.replace(/\r\n/g, '\n').split('---\n');
  return {
    status: r.status,
    mounts: volatileMounts(mountinfo, dir),
    rest: rest.join('---\n'),
    // systemd-nspawn's own noise about its propagation directory is not the container's
    stderr: r.stderr
      .split('\n')
      .filter((l) => l !== '' && !l.startsWith('Attempted to remove disk file system') && !l.startsWith('Short read while reading cgroup mode'))
      .map((l) => l.replace(/ \([A-Z]+\)$/, '').split(dir).join('TREE'))
      .join('\n'),
    unchanged: JSON.stringify(treeListing(dir)) === JSON.stringify(before),
  };
}

async function both(args: string[], make?: (dir: string) => void, command?: string[]): Promise<Record<Tool, Seen>> {
  const seen = {} as Record<Tool, Seen>;
  for (const tool of TOOLS) seen[tool] = await probe(tool, args, make, command);
  return seen;
}

describe('--volatile= as systemd-nspawn 252 (setup_volatile_mode)', () => {
  it('the test can fail: without --volatile the root is the tree, writable, and a write reaches it', async () => {
    const s = await probe('nspawn', []);
    expect(s.status, s.stderr).toBe(0);
    const root = s.mounts.find((m) => m.startsWith('/ '));
    expect(root).toMatch(/^\/ root=TREE \w+ \S+ rw/);
    expect(root).not.toMatch(/ (tmpfs|overlay) /);
    expect(s.rest).toContain('/new-file writable');
    expect(s.unchanged).toBe(false);
  });

  it('yes: a tmpfs root, the tree\'s /usr read-only in it, /etc and /var empty and writable', async () => {
    const seen = await both(['--volatile=yes']);
    expect(seen['systemd-nspawn'].status, seen['systemd-nspawn'].stderr).toBe(0);
    expect(seen.nspawn).toEqual(seen['systemd-nspawn']);
    const [root, usr] = seen.nspawn.mounts;
    expect(root).toMatch(/^\/ root=\/ tmpfs tmpfs rw rw,size=\d+k,nr_inodes=1048576,mode=755$/);
    expect(usr).toMatch(/^\/usr root=TREE\/usr \w+ \S+ ro,/);
    expect(seen.nspawn.rest).toContain('/new-file writable');
    expect(seen.nspawn.rest).toContain('/usr/new-file read-only');
    expect(seen.nspawn.rest).toContain("cat: can't open '/etc/marker'");
    expect(seen.nspawn.unchanged).toBe(true);
  });

  it('state: the tree read-only, a tmpfs on /var', async () => {
    const seen = await both(['--volatile=state']);
    expect(seen['systemd-nspawn'].status, seen['systemd-nspawn'].stderr).toBe(0);
    expect(seen.nspawn).toEqual(seen['systemd-nspawn']);
    expect(seen.nspawn.mounts.find((m) => m.startsWith('/ '))).toMatch(/^\/ root=TREE \w+ \S+ ro,/);
    expect(seen.nspawn.mounts.find((m) => m.startsWith('/var '))).toMatch(/^\/var root=\/ tmpfs tmpfs rw,nosuid,nodev|^\/var root=\/ tmpfs tmpfs rw /);
    expect(seen.nspawn.rest).toContain('/new-file read-only');
    expect(seen.nspawn.rest).toContain('/var/new-file writable');
    expect(seen.nspawn.rest).toContain('etc marker');
    expect(seen.nspawn.unchanged).toBe(true);
  });

  it('state: a tree without /var cannot get one (read-only by then), refused alike', async () => {
    const seen = await both(['--volatile=state'], (dir) => {
      mergedTree(dir);
      rmSync(join(dir, 'var'), { recursive: true });
    });
    expect(seen['systemd-nspawn'].status).toBe(1);
    expect(seen.nspawn.status).toBe(1);
    expect(seen.nspawn.stderr).toContain('Failed to create TREE: Read-only file system');
    expect(seen['systemd-nspawn'].stderr).toContain('Failed to create TREE: Read-only file system');
    expect(seen.nspawn.unchanged && seen['systemd-nspawn'].unchanged).toBe(true);
  });

  it('overlay: an overlay on the root, the tree its lower layer, every write in a tmpfs', async () => {
    const seen = await both(['--volatile=overlay']);
    expect(seen['systemd-nspawn'].status, seen['systemd-nspawn'].stderr).toBe(0);
    expect(seen.nspawn).toEqual(seen['systemd-nspawn']);
    expect(seen.nspawn.mounts.find((m) => m.startsWith('/ '))).toMatch(
      /^\/ root=\/ overlay overlay rw,relatime rw,lowerdir=TREE,upperdir=\/tmp\/nspawn-volatile-XXXXXX\/upper,workdir=\/tmp\/nspawn-volatile-XXXXXX\/work/,
    );
    expect(seen.nspawn.rest).toContain('/usr/new-file writable');
    expect(seen.nspawn.rest).toContain('etc marker');
    expect(seen.nspawn.unchanged).toBe(true);
  });

  it('the same with a supervising nspawn (the helper spawned, not handed over)', async () => {
    for (const mode of ['yes', 'state', 'overlay']) {
      const handed = await probe('nspawn', [`--volatile=${mode}`]);
      const spawned = await probe('nspawn', [`--volatile=${mode}`], mergedTree, undefined, { ...TOOL_ENV, NSPAWN_HANDOFF: '0' });
      expect(spawned.status, spawned.stderr).toBe(0);
      expect(spawned, mode).toEqual(handed);
    }
  });

  it('a known difference (runtime README): -U with yes fails under 252 (its idmapped remount of the covered root), runs here', async () => {
    const seen = await both(['-U', '--volatile=yes']);
    expect(seen['systemd-nspawn'].status).toBe(1);
    expect(seen['systemd-nspawn'].stderr).toContain('Failed to set up ID mapped mounts: Device or resource busy');
    expect(seen.nspawn.status, seen.nspawn.stderr).toBe(0);
    expect(seen.nspawn.mounts[0]).toMatch(/^\/ root=\/ tmpfs tmpfs rw rw,size=\d+k,nr_inodes=1048576,mode=755,uid=\d+,gid=\d+$/);
    expect(seen.nspawn.mounts[1]).toMatch(/^\/usr root=TREE\/usr \w+ \S+ ro,relatime,idmapped /);
    expect(seen.nspawn.rest).toContain('/usr/new-file read-only');
    expect(seen.nspawn.unchanged).toBe(true);
  });

  it('every mode implies --read-only: with -U and chown ownership refused alike, with the --read-only words', async () => {
    const seen = await both(['--volatile=overlay', '-U', '--private-users-ownership=chown']);
    for (const tool of TOOLS) {
      expect(seen[tool].status, tool).toBe(1);
      expect(seen[tool].stderr, tool).toBe('--read-only and --private-users-ownership=chown may not be combined.');
      expect(seen[tool].unchanged, tool).toBe(true);
    }
  });

  it('-x with each mode (accepted by 252): the same writes and root, the tree unchanged, no snapshot left', async () => {
    for (const mode of ['yes', 'state', 'overlay']) {
      const seen = await both(['-x', `--volatile=${mode}`]);
      expect(seen['systemd-nspawn'].status, `${mode}: ${seen['systemd-nspawn'].stderr}`).toBe(0);
      // (the file system under the volatile mounts differs: -x is an overlay here, a copy under 252; runtime README)
      expect(seen.nspawn.status, `${mode}: ${seen.nspawn.stderr}`).toBe(0);
      expect(seen.nspawn.rest, mode).toBe(seen['systemd-nspawn'].rest);
      expect(seen.nspawn.mounts.map((m) => m.split(' ')[0]), mode).toEqual(seen['systemd-nspawn'].mounts.map((m) => m.split(' ')[0]));
      expect(seen.nspawn.unchanged && seen['systemd-nspawn'].unchanged, mode).toBe(true);
    }
    for (const run of readdirSync(tmp.dir)) expect(readdirSync(join(tmp.dir, run)), run).toEqual(['tree']);
  });

  it('--volatile alone is yes', async () => {
    const seen = await both(['--volatile']);
    expect(seen['systemd-nspawn'].status, seen['systemd-nspawn'].stderr).toBe(0);
    expect(seen.nspawn).toEqual(seen['systemd-nspawn']);
    expect(seen.nspawn.mounts.find((m) => m.startsWith('/ '))).toMatch(/^\/ root=\/ tmpfs /);
  });

  for (const [bin, words] of [
    ['directory', 'Sorry, --volatile=yes mode is not supported with OS images that have not merged /bin/, /sbin/, /lib/, /lib64/ into /usr/. Please work with your distribution and help them adopt the merged /usr scheme.'],
    ['file', 'Error starting image: if --volatile=yes is used /bin must be a symlink (for merged /usr support) or non-existent (in which case a symlink is created automatically).'],
  ] as const) {
    it(`yes refuses a tree whose /bin is a ${bin}, with 252's words`, async () => {
      const seen = await both(['--volatile=yes'], (dir) => mergedTree(dir, bin));
      for (const tool of TOOLS) {
        expect(seen[tool].status, tool).toBe(1);
        expect(seen[tool].stderr.split('\n'), tool).toContain(words);
        expect(seen[tool].unchanged, tool).toBe(true);
      }
      // the modes that keep the tree's top level take such a tree
      const state = await probe('nspawn', ['--volatile=overlay'], (dir) => mergedTree(dir, bin), ['/usr/bin/true']);
      expect(state.status, state.stderr).toBe(0);
    });
  }

  it('yes on a tree without /bin: base_filesystem_create() makes the links in the tmpfs, not in the tree', async () => {
    const seen = await both(['--volatile=yes'], (dir) => mergedTree(dir, 'none'), [
      '/bin/sh',
      '-c',
      'echo ---; cd /; for f in *; do if [ -L "$f" ]; then echo "$f -> $(/usr/bin/busybox readlink $f)"; fi; done',
    ]);
    expect(seen['systemd-nspawn'].status, seen['systemd-nspawn'].stderr).toBe(0);
    expect(seen.nspawn).toEqual(seen['systemd-nspawn']);
    expect(seen.nspawn.rest).toContain('bin -> usr/bin');
    expect(seen.nspawn.unchanged).toBe(true);
  });

  it('Volatile= in a trusted .nspawn file', async () => {
    const name = `nt-volatile-${process.pid}`;
    const file = `/run/systemd/nspawn/${name}.nspawn`;
    mkdirSync('/run/systemd/nspawn', { recursive: true });
    writeFileSync(file, '[Files]\nVolatile=overlay\n');
    try {
      const seen = await both(['-M', name]);
      expect(seen['systemd-nspawn'].status, seen['systemd-nspawn'].stderr).toBe(0);
      expect(seen.nspawn).toEqual(seen['systemd-nspawn']);
      expect(seen.nspawn.mounts.find((m) => m.startsWith('/ '))).toMatch(/^\/ root=\/ overlay /);
      expect(seen.nspawn.unchanged).toBe(true);
    } finally {
      rmSync(file, { force: true });
    }
  });

  it('nothing stays mounted and no temporary directory stays in /tmp', () => {
    expect(mountsUnder(tmp.dir)).toEqual([]);
    expect(leftoverTemp()).toEqual(tempBefore);
  });
});
