import { describe, expect, it } from 'vitest';
import type { Tree } from './host.js';
import { volatileBaseFilesystemOps, volatileTree } from './volatile.js';
import { planContainer } from './plan.js';
import { MOUNT_ATTR, OpFlag } from './protocol.js';
import { bareHost, baseConfig } from './test/fixtures.js';

/** A merged-/usr tree: /usr/bin, /usr/lib, /usr/sbin, /etc/passwd, /var/lib/x, /bin -> usr/bin, /lib -> usr/lib. */
function mergedTree(): Tree {
  const dirs = new Set(['/', '/usr', '/usr/bin', '/usr/lib', '/usr/sbin', '/etc', '/var', '/var/lib']);
  const files: Record<string, string> = { '/etc/passwd': 'root:x:0:0::/root:/bin/sh\n', '/var/lib/x': 'x', '/usr/lib/os-release': 'ID=t\n' };
  const links: Record<string, string> = { '/bin': 'usr/bin', '/lib': 'usr/lib' };
  const all = [...dirs, ...Object.keys(files), ...Object.keys(links)];
  return {
    root: '/srv/tree',
    resolve: (p) => (dirs.has(p) || p in files ? `/srv/tree${p}` : undefined),
    readFile: (p) => files[p],
    isDirectory: (p) => dirs.has(p),
    readdir: (p) => all.filter((f) => f !== '/' && f.slice(0, f.lastIndexOf('/') || 1) === p).map((f) => f.slice(f.lastIndexOf('/') + 1)),
    lexists: (p) => dirs.has(p) || p in files || p in links,
    readlink: (p) => links[p],
  };
}

describe('volatileTree(): the root the plan sees', () => {
  it('yes: only /usr of the tree, in an empty root', () => {
    const t = volatileTree(mergedTree(), 'yes');
    expect(t.readdir('/')).toEqual(['usr']);
    expect(t.isDirectory('/usr/bin')).toBe(true);
    expect(t.resolve('/usr/lib/os-release')).toBe('/srv/tree/usr/lib/os-release');
    expect(t.readFile('/etc/passwd')).toBeUndefined();
    expect(t.lexists('/bin')).toBe(false);
    expect(t.isDirectory('/var')).toBe(false);
  });
  it('state: the tree with an empty /var', () => {
    const t = volatileTree(mergedTree(), 'state');
    expect(t.readFile('/etc/passwd')).toBe('root:x:0:0::/root:/bin/sh\n');
    expect(t.isDirectory('/var')).toBe(true);
    expect(t.readdir('/var')).toEqual([]);
    expect(t.readFile('/var/lib/x')).toBeUndefined();
    expect(t.lexists('/bin')).toBe(true);
  });
  it('overlay and none: the tree itself', () => {
    const tree = mergedTree();
    expect(volatileTree(tree, 'overlay')).toBe(tree);
    expect(volatileTree(tree, undefined)).toBe(tree);
  });
});

describe('volatileBaseFilesystemOps(): base_filesystem_create() on the volatile root', () => {
  it('yes: the links into /usr and the top-level directories, in 252\'s order, each allowed to fail', () => {
    const ops = volatileBaseFilesystemOps(volatileTree(mergedTree(), 'yes'), 'yes', 'x64');
    expect(ops.map((o) => `${o.kind} ${o.target}${o.source ? ` -> ${o.source}` : ''}`)).toEqual([
      'symlink /bin -> usr/bin',
      'symlink /lib -> usr/lib',
      'mkdir /root',
      'symlink /sbin -> usr/sbin',
      'mkdir /var',
      'mkdir /etc',
      'mkdir /proc',
      'mkdir /sys',
      'mkdir /dev',
    ]);
    expect(ops.every((o) => o.flags === OpFlag.OPTIONAL)).toBe(true);
    expect(ops.find((o) => o.target === '/root')?.mode).toBe(0o750);
  });
  it('state: nothing (the root is read-only by then: every creation fails with EROFS, ignored)', () => {
    expect(volatileBaseFilesystemOps(volatileTree(mergedTree(), 'state'), 'state')).toEqual([]);
  });
  it('overlay: what the tree lacks, into the upper layer', () => {
    const ops = volatileBaseFilesystemOps(mergedTree(), 'overlay', 'x64');
    expect(ops.map((o) => o.target)).toEqual(['/root', '/sbin', '/proc', '/sys', '/dev']);
  });
});

describe('planContainer() with --volatile', () => {
  const plan = (volatile: 'yes' | 'state' | 'overlay' | undefined, readOnly = volatile !== undefined) =>
    planContainer(baseConfig({ readOnly, ...(volatile ? { volatile } : {}) }), bareHost({ hasResolvConf: true, resolvConf: 'nameserver 192.0.2.1\n' }), volatileTree(mergedTree(), volatile), { hex128: () => 'ab'.repeat(16) });
  it('the mode goes to the helper; the tree is not made read-only by the plan (the helper did what each mode wants)', () => {
    for (const mode of ['yes', 'state', 'overlay'] as const) {
      const p = plan(mode);
      expect(p.volatileMode).toBe(mode);
      expect(p.ops.some((o) => o.kind === 'setattr' && o.target === '/' && o.mountFlags === MOUNT_ATTR.RDONLY)).toBe(false);
    }
    expect(plan(undefined).volatileMode).toBeUndefined();
    expect(plan(undefined, true).ops.some((o) => o.kind === 'setattr' && o.target === '/')).toBe(true);
  });
  it('etc_writable(): /etc/resolv.conf is copied under yes and overlay, bound under state (read-only /etc)', () => {
    const resolv = (mode: 'yes' | 'state' | 'overlay') => plan(mode).ops.filter((o) => o.target === '/etc/resolv.conf').map((o) => o.kind);
    expect(resolv('yes')).toEqual(['write']);
    expect(resolv('overlay')).toEqual(['write']);
    expect(resolv('state')).toEqual(['mount', 'remount']);
  });
  it('yes: the base file system is made first, before /tmp and the API file systems', () => {
    const p = plan('yes');
    expect(p.ops[0]).toMatchObject({ kind: 'symlink', target: '/bin', source: 'usr/bin' });
    expect(p.ops.findIndex((o) => o.target === '/etc')).toBeLessThan(p.ops.findIndex((o) => o.target === '/tmp'));
  });
});
