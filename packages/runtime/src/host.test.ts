import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cgroupLayoutFromMountinfo, chaseInRoot, nodeTree, parseOsRelease, terminalMajors } from './host.js';

const hybrid = `25 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 25 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate
33 31 0:28 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,xattr,name=systemd
34 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:30 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,memory`;

describe('cgroupLayoutFromMountinfo', () => {
  it('hybrid', () => {
    expect(cgroupLayoutFromMountinfo(hybrid)).toEqual({
      kind: 'hybrid',
      hierarchies: [
        { name: 'systemd', options: 'name=systemd' },
        { name: 'cpu,cpuacct', options: 'cpu,cpuacct' },
        { name: 'memory', options: 'memory' },
      ],
    });
  });
  it('legacy without the unified mount', () => {
    expect(cgroupLayoutFromMountinfo(hybrid.split('\n').filter((l) => !l.includes('cgroup2')).join('\n')).kind).toBe('legacy');
  });
  it('unified', () => {
    expect(cgroupLayoutFromMountinfo('30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw').kind).toBe('unified');
  });
  it('none', () => {
    expect(cgroupLayoutFromMountinfo('').kind).toBe('none');
  });
});

describe('parseOsRelease', () => {
  it('quotes, comments, escapes', () => {
    expect(parseOsRelease('# c\nID=debian\nPRETTY_NAME="Debian \\"12\\""\nVERSION_ID=\'12\'\nbad\n')).toEqual({
      ID: 'debian',
      PRETTY_NAME: 'Debian "12"',
      VERSION_ID: '12',
    });
  });
});

describe('chaseInRoot', () => {
  const root = mkdtempSync(join(tmpdir(), 'nspawn-chase-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'etc'));
  writeFileSync(join(root, 'etc/real'), 'x');
  symlinkSync('/etc/real', join(root, 'etc/abs'));
  symlinkSync('../../../../etc', join(root, 'up'));
  symlinkSync('/', join(root, 'rootlink'));
  symlinkSync('loop2', join(root, 'loop1'));
  symlinkSync('loop1', join(root, 'loop2'));

  it('resolves absolute links against the root, never the host', () => {
    expect(chaseInRoot(root, '/etc/abs')).toBe(join(root, 'etc/real'));
    expect(chaseInRoot(root, '/up/real')).toBe(join(root, 'etc/real'));
    expect(chaseInRoot(root, '/rootlink/etc/real')).toBe(join(root, 'etc/real'));
    expect(chaseInRoot(root, '/../../etc/real')).toBe(join(root, 'etc/real'));
  });
  it('missing paths and loops are undefined', () => {
    expect(chaseInRoot(root, '/nope')).toBeUndefined();
    expect(chaseInRoot(root, '/loop1')).toBeUndefined();
  });
  it('nodeTree reads through it', () => {
    const t = nodeTree(root);
    expect(t.readFile('/up/real')).toBe('x');
    expect(t.isDirectory('/rootlink/etc')).toBe(true);
    expect(t.readlink('/etc/abs')).toBe('/etc/real');
    expect(t.lexists('/loop1')).toBe(true);
    expect(t.readdir('/etc').sort()).toEqual(['abs', 'real']);
  });
});

describe('terminalMajors', () => {
  it('takes the character devices of terminal drivers from /proc/devices', () => {
    const text = 'Character devices:\n  1 mem\n  4 /dev/vc/0\n  4 tty\n  4 ttyS\n  5 /dev/tty\n  5 /dev/console\n  5 /dev/ptmx\n  7 vcs\n 10 misc\n128 ptm\n136 pts\n204 ttyAMA\n229 hvc\n\nBlock devices:\n  7 loop\n  8 sd\n';
    expect([...terminalMajors(text)].sort((a, b) => a - b)).toEqual([4, 5, 128, 136, 204, 229]);
  });
});
