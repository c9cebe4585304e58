/**
 * The container's mounts side by side with runc. The cgroup mount on a host with v1 hierarchies: a tmpfs with a
 * bind of the container's own directory of each hierarchy, the same names, flags and contents (not the host's
 * whole cgroup2 tree, which nspawn-oci once mounted there). Mount propagation: a bind mount with "rprivate", "rslave" or
 * "rshared" and linux.rootfsPropagation. What the container sees in its mountinfo (the propagation tags: none,
 * master:N, shared:N) must be runc's, (a propagation change is mount(2) without MS_REMOUNT: the helper once remounted the
 * superblock of the bind's source instead, which left the bind a slave and cost a flush of that file system's
 * dcache and an RCU grace period at every start). One difference, asserted: nspawn-oci's host binds keep the
 * mount IDs of their copies made before the clone, so they come first in mountinfo (plan.bindCopiesFirst).
 *
 * Root and runc (scripts/setup.sh --test); fails, never skips, without them. A busybox bundle in a temp directory,
 * run in the foreground by each runtime; nothing is left.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, mountsUnder, REPO } from './helpers/containers.js';

const RUNTIMES = { runc: '/usr/sbin/runc', 'nspawn-oci': join(REPO, 'apps/cli/bin/nspawn-oci') };
const ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };
let base: ReturnType<typeof makeTempDir> | undefined;
let bundle = '';
let spec: Record<string, any> = {};
let n = 0;
let shared = false;

/** the propagation of /data and of / (the tags without their group numbers, which differ from run to run) */
const PROPAGATION = ['sh', '-c', 'awk \'$5 == "/data" || $5 == "/" { t = ""; for (i = 7; $i != "-"; i++) { sub(/:[0-9]+$/, "", $i); t = t " " $i } print $5 ":" t }\' /proc/self/mountinfo | sort'];

/** runs the bundle with RUNTIME in the foreground: the lines the container printed */
function runWith(runtime: keyof typeof RUNTIMES, edit: (s: Record<string, any>) => void, args = PROPAGATION): string[] {
  const s = structuredClone(spec);
  s.process.args = args;
  edit(s);
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(s, null, 2));
  const state = join(base!.dir, `state-${runtime}`);
  const r = spawnSync(RUNTIMES[runtime], ['--root', state, 'run', `nt-ociprop-${++n}`], { cwd: bundle, env: ENV, encoding: 'utf8', timeout: 60000 });
  expect(r.stderr, `${runtime}: stderr`).toBe('');
  expect(r.status, `${runtime}: exit status`).toBe(0);
  return r.stdout.trim().split('\n');
}

/** both runtimes, the same bundle: the same view */
function same(edit: (s: Record<string, any>) => void, args = PROPAGATION): string[] {
  const a = runWith('runc', edit, args);
  const b = runWith('nspawn-oci', edit, args);
  expect(b).toEqual(a);
  return b;
}

const bindWith = (opts: string[]) => (s: Record<string, any>) => {
  s.mounts.push({ destination: '/data', type: 'bind', source: join(base!.dir, 'hostdir'), options: ['rbind', ...opts] });
};

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error('oci-propagation: needs root');
  if (!existsSync(RUNTIMES.runc)) throw new Error('oci-propagation: runc is missing (scripts/setup.sh --test installs it)');
  base = makeTempDir('nspawn-oci-prop-');
  bundle = join(base.dir, 'bundle');
  mkdirSync(join(base.dir, 'hostdir'));
  // the bind's source a shared mount of its own: its copy in the container is then the host's peer or slave unless
  // the config's propagation says otherwise
  await execa('mount', ['--bind', join(base.dir, 'hostdir'), join(base.dir, 'hostdir')]);
  shared = true;
  await execa('mount', ['--make-shared', join(base.dir, 'hostdir')]);
  await execa(join(REPO, 'scripts/make-busybox-tree.sh'), [join(bundle, 'rootfs')], { stdout: 'ignore' });
  await execa(RUNTIMES['nspawn-oci'], ['spec', '-b', bundle], { env: ENV });
  spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
  spec.process.terminal = false;
});

afterAll(() => {
  if (!base) return;
  if (shared) spawnSync('umount', [join(base.dir, 'hostdir')]);
  expect(mountsUnder(base.dir)).toEqual([]);
  expect(base.remove()).toEqual([]);
});

describe('nspawn-oci: the cgroup mount as runc', () => {
  it("a host with v1 hierarchies: a tmpfs with the container's own directories, read-only as asked", () => {
    const v1 = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => / - cgroup /.test(l));
    expect(v1.length, 'this host has cgroup v1 hierarchies (the layout under test)').toBeGreaterThan(0);
    const cgroupMount = (opts: string[]) => (s: Record<string, any>) => {
      s.mounts = s.mounts.filter((m: { type?: string }) => m.type !== 'cgroup');
      s.mounts.push({ destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: opts });
      s.linux.cgroupsPath = `/nt-ocimounts-${n + 1}`;
    };
    // mount point, its options, the fs type, and what is in it (a v1 hierarchy's own files: tasks...)
    // (and the propagation tags without their numbers: a bind of a shared host hierarchy stays its slave)
    const probe = ['sh', '-c', 'awk \'$5 ~ "^/sys/fs/cgroup" { t = ""; for (i = 7; $i != "-"; i++) { sub(/:[0-9]+$/, "", $i); t = t " " $i } print $5, $6, $(i + 1) t }\' /proc/self/mountinfo | sort; ls /sys/fs/cgroup; ls /sys/fs/cgroup/pids | grep -c tasks'];
    const ro = same(cgroupMount(['rprivate', 'nosuid', 'noexec', 'nodev', 'relatime', 'ro']), probe);
    expect(ro).toContain('/sys/fs/cgroup/pids ro,nosuid,nodev,noexec,relatime cgroup');
    expect(ro).not.toContain(expect.stringMatching(/cgroup2/));
    expect(same(cgroupMount(['nosuid', 'noexec', 'nodev']), probe)).toContain('/sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime cgroup');
  });
});

describe('nspawn-oci: mount propagation as runc', () => {
  it('a bind with rprivate is private; with rslave a slave; with rshared shared', () => {
    expect(same(bindWith(['rprivate']))).toContain('/data:');
    expect(same(bindWith(['rslave']))).toContain('/data: master');
    expect(same(bindWith(['rshared']))).toContain('/data: shared master');
  });

  it('a difference: the host binds come first in mountinfo (their copies are made before the clone and kept)', () => {
    const order = ['sh', '-c', 'awk \'$5 == "/data" || $5 == "/" { print $5 }\' /proc/self/mountinfo'];
    expect(runWith('runc', bindWith(['rprivate']), order)).toEqual(['/', '/data']);
    expect(runWith('nspawn-oci', bindWith(['rprivate']), order)).toEqual(['/data', '/']);
  });

  it('linux.rootfsPropagation', () => {
    expect(same((s) => (s.linux.rootfsPropagation = 'rprivate'))).toContain('/:');
    expect(same((s) => (s.linux.rootfsPropagation = 'rslave'))).toContain('/:');
    // a difference: the spec's "shared" root is shared here (set after pivot_root, which refuses a shared tree);
    // runc 1.1.5 (Debian 12) leaves it private
    const shared = (s: Record<string, any>) => (s.linux.rootfsPropagation = 'rshared');
    expect(runWith('runc', shared)).toEqual(['/:']);
    expect(runWith('nspawn-oci', shared)).toEqual(['/: shared']);
  });
});
