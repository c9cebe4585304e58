import { describe, expect, it } from 'vitest';
import type { HostFacts, Tree } from './host.js';
import { buildEnvironment, buildRlimits, type ContainerConfig, imageSystemdVersion, mergeEnv, planContainer } from './plan.js';
import { CLONE, MOUNT_ATTR, MS, type Op, OpFlag } from './protocol.js';
import { baseConfig } from './test/fixtures.js';

function fakeTree(files: Record<string, string> = {}, dirs: string[] = ['/usr'], links: Record<string, string> = {}): Tree {
  const all = new Set([...Object.keys(files), ...dirs]);
  return {
    root: '/srv/tree',
    resolve: (p) => (all.has(p) ? `/srv/tree${p}` : undefined),
    readFile: (p) => files[p],
    isDirectory: (p) => dirs.includes(p),
    readdir: (p) =>
      [...all]
        .filter((f) => f.startsWith(`${p}/`) && !f.slice(p.length + 1).includes('/'))
        .map((f) => f.slice(p.length + 1)),
    lexists: (p) => all.has(p) || p in links,
    readlink: (p) => links[p],
  };
}

const host: HostFacts = {
  osRelease: { path: '/etc/os-release', pairs: { ID: 'debian', VERSION_ID: '12', PRETTY_NAME: 'Debian' } },
  term: 'xterm',
  devNodes: {
    null: { mode: 0o20666, rdev: 0x103 },
    tty: { mode: 0o20666, rdev: 0x500 },
    'net/tun': { mode: 0o20666, rdev: 0xa00 | 200 },
  },
  localtime: { link: '/usr/share/zoneinfo/Etc/UTC' },
  hasResolvConf: true,
  resolvConf: 'nameserver 192.0.2.1\n',
  cgroups: {
    kind: 'hybrid',
    hierarchies: [
      { name: 'cpu', options: 'cpu' },
      { name: 'memory', options: 'memory' },
      { name: 'systemd', options: 'name=systemd' },
    ],
  },
  nrOpen: 1048576,
  pid1Limits: { NPROC: ['95000', '95000'], SIGPENDING: ['95000', '95000'] },
  inaccessibleFile: '/run/nspawn/inaccessible/reg',
};

const cfg = baseConfig;

const rnd = { hex128: () => 'ab'.repeat(16) };
const plan = (c: Partial<ContainerConfig> = {}, h: HostFacts = host, t: Tree = fakeTree()) => planContainer(cfg(c), h, t, rnd);
const targets = (ops: Op[], kind?: string) => ops.filter((o) => !kind || o.kind === kind).map((o) => o.target);
const find = (ops: Op[], kind: string, target: string) => ops.find((o) => o.kind === kind && o.target === target);

describe('namespaces', () => {
  it('always mount, PID, UTS and IPC, plus cgroup by default', () => {
    const p = plan();
    expect(p.cloneFlags).toBe(CLONE.NEWNS | CLONE.NEWPID | CLONE.NEWUTS | CLONE.NEWIPC | CLONE.NEWCGROUP);
    expect(p.sync).toBe(false);
  });
  it('network namespace with --private-network, and lo comes up', () => {
    const p = plan({ privateNetwork: true });
    expect(p.cloneFlags & CLONE.NEWNET).toBeTruthy();
    expect(p.loopback).toBe(true);
  });
  it('a user namespace: the helper writes the maps itself (no wait for Node)', () => {
    const p = plan({ userns: { shift: 0x80000, range: 65536 } });
    expect(p.cloneFlags & CLONE.NEWUSER).toBeTruthy();
    expect(p.usermap).toEqual({ shift: 0x80000, range: 65536 });
    expect(p.sync).toBe(false);
  });
  it('no cgroup namespace when asked', () => {
    expect(plan({ useCgns: false }).cloneFlags & CLONE.NEWCGROUP).toBe(0);
  });
});

describe('mount table (systemd-nspawn 252 mount_all order and flags)', () => {
  it('API file systems in order, /proc after /dev and /run', () => {
    const t = targets(plan().ops, 'mount');
    const idx = (x: string) => t.indexOf(x);
    for (const m of ['/tmp', '/sys', '/dev', '/dev/shm', '/run', '/run/host', '/dev/pts', '/proc', '/dev/mqueue', '/sys/fs/cgroup'])
      expect(idx(m), m).toBeGreaterThanOrEqual(0);
    expect(idx('/tmp')).toBeLessThan(idx('/sys'));
    expect(idx('/dev')).toBeLessThan(idx('/dev/shm'));
    expect(idx('/run')).toBeLessThan(idx('/proc'));
    expect(idx('/proc')).toBeLessThan(idx('/proc/sys'));
  });
  it('/dev/mqueue is not fatal (mount_all() has no MOUNT_FATAL for it), /proc is', () => {
    const ops = plan().ops;
    expect(find(ops, 'mount', '/dev/mqueue')!.flags! & OpFlag.OPTIONAL).toBe(OpFlag.OPTIONAL);
    expect((find(ops, 'mount', '/proc')!.flags ?? 0) & OpFlag.OPTIONAL).toBe(0);
  });
  it('/proc is nosuid,nodev,noexec; /proc/sys is bound and made read-only', () => {
    const ops = plan().ops;
    expect(find(ops, 'mount', '/proc')?.mountFlags).toBe(MS.NOSUID | MS.NODEV | MS.NOEXEC);
    expect(find(ops, 'remount', '/proc/sys')?.mountFlags).toBe(MS.BIND | MS.REMOUNT | MS.RDONLY | MS.NOSUID | MS.NOEXEC | MS.NODEV);
    expect(find(ops, 'mount', '/proc/sys/net')).toBeUndefined();
  });
  it('/proc/sys/net stays writable only with a private network', () => {
    expect(find(plan({ privateNetwork: true }).ops, 'mount', '/proc/sys/net')).toBeDefined();
  });
  it('masks kernel-internal /proc files with the inaccessible node', () => {
    const ops = plan().ops;
    for (const f of ['kallsyms', 'kcore', 'keys', 'sysrq-trigger', 'timer_list']) {
      expect(find(ops, 'mount', `/proc/${f}`)?.source).toBe(host.inaccessibleFile);
      expect(find(ops, 'remount', `/proc/${f}`)).toBeDefined();
    }
  });
  it('/sys is sysfs read-only without a private network', () => {
    const sys = find(plan().ops, 'mount', '/sys');
    expect(sys?.fstype).toBe('sysfs');
    expect(sys!.mountFlags! & MS.RDONLY).toBeTruthy();
  });
  it('with a private network /sys is a tmpfs with a fresh sysfs bound under it', () => {
    const ops = plan({ privateNetwork: true }).ops;
    expect(find(ops, 'mount', '/sys')?.fstype).toBe('tmpfs');
    expect(find(ops, 'mount', '/sys/full')?.fstype).toBe('sysfs');
    expect(find(ops, 'umount', '/sys/full')).toBeDefined();
    expect(find(ops, 'mount', '/sys/class')?.source).toBe('/sys/full/class');
  });
  it('SYSTEMD_NSPAWN_API_VFS_WRITABLE=yes leaves /proc/sys and /sys writable', () => {
    const ops = plan({ apiVfsWritable: 'yes' }).ops;
    expect(find(ops, 'remount', '/proc/sys')).toBeUndefined();
    expect(find(ops, 'mount', '/sys')!.mountFlags! & MS.RDONLY).toBe(0);
  });
  it('SYSTEMD_NSPAWN_API_VFS_WRITABLE=network keeps /proc/sys/net writable', () => {
    expect(find(plan({ apiVfsWritable: 'network' }).ops, 'mount', '/proc/sys/net')).toBeDefined();
  });
  it('/dev, /dev/shm, /run and /tmp tmpfs options', () => {
    const ops = plan().ops;
    expect(find(ops, 'mount', '/dev')?.data).toBe('mode=755,size=4m,nr_inodes=64k');
    expect(find(ops, 'mount', '/dev/shm')?.data).toBe('mode=1777,size=10%,nr_inodes=400k');
    expect(find(ops, 'mount', '/run')?.data).toBe('mode=755,size=20%,nr_inodes=800k');
    expect(find(ops, 'mount', '/tmp')?.data).toBe('mode=1777,size=10%,nr_inodes=400k');
  });
  it('no /tmp tmpfs when the user mounts something on /tmp', () => {
    const ops = plan({ customMounts: [{ type: 'tmpfs', destination: '/tmp', options: 'mode=0700' }] }).ops;
    expect(ops.filter((o) => o.kind === 'mount' && o.target === '/tmp')).toHaveLength(1);
  });
  it('device nodes, /dev/char links, ptmx and fd links', () => {
    const ops = plan().ops;
    expect(find(ops, 'mknod', '/dev/null')).toMatchObject({ mode: 0o20666, dev: 0x103, source: '/dev/null' });
    expect(find(ops, 'symlink', '/dev/char/1:3')?.source).toBe('../null');
    expect(find(ops, 'symlink', '/dev/char/10:200')?.source).toBe('../net/tun');
    expect(find(ops, 'symlink', '/dev/ptmx')?.source).toBe('pts/ptmx');
    expect(find(ops, 'symlink', '/dev/fd')?.source).toBe('/proc/self/fd');
    expect(find(ops, 'mount', '/dev/pts')?.data).toBe('newinstance,ptmxmode=0666,mode=620,gid=5');
  });
  it('/run/host/os-release from the host, read-only', () => {
    const ops = plan().ops;
    expect(find(ops, 'mount', '/run/host/os-release')?.source).toBe('/etc/os-release');
    expect(find(ops, 'remount', '/run/host')).toBeDefined();
  });
  it('a fresh boot id and a dead /proc/kmsg', () => {
    const ops = plan().ops;
    const w = ops.find((o) => o.kind === 'write' && o.target.includes('boot-id'));
    expect(w?.data).toBe('abababab-abab-abab-abab-abababababab\n');
    expect(find(ops, 'mount', '/proc/sys/kernel/random/boot_id')?.source).toBe(w?.target);
    expect(find(ops, 'mount', '/proc/kmsg')).toBeDefined();
  });
  it('--read-only remounts the whole tree first', () => {
    const ops = plan({ readOnly: true }).ops;
    expect(ops[0]).toEqual({ kind: 'setattr', target: '/', mountFlags: MOUNT_ATTR.RDONLY, flags: OpFlag.RECURSIVE });
  });
  it('the console pty is set up last, and not in pipe mode', () => {
    expect(plan({ console: 'read-only' }).ops.at(-1)?.kind).toBe('console');
    expect(plan({ console: 'pipe' }).ops.some((o) => o.kind === 'console')).toBe(false);
  });
});

describe('cgroups', () => {
  it('legacy layout in the container on a hybrid host when the tree has no systemd', () => {
    const ops = plan().ops;
    expect(find(ops, 'mount', '/sys/fs/cgroup')?.fstype).toBe('tmpfs');
    expect(find(ops, 'mount', '/sys/fs/cgroup/cpu')?.data).toBe('cpu');
    expect(find(ops, 'remount', '/sys/fs/cgroup/cpu')!.mountFlags! & MS.RDONLY).toBeTruthy();
    expect(find(ops, 'mount', '/sys/fs/cgroup/systemd')?.data).toBe('none,name=systemd');
    expect(find(ops, 'mount', '/sys/fs/cgroup/unified')).toBeUndefined();
  });
  it("finds systemd in Debian's multiarch directory, the highest version where there are several", () => {
    const t = fakeTree(
      { '/usr/lib/x86_64-linux-gnu/systemd/libsystemd-shared-252.so': '', '/lib/systemd/libsystemd-shared-219.so': '' },
      ['/usr', '/usr/lib', '/usr/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu/systemd', '/lib/systemd'],
    );
    expect(imageSystemdVersion(t)).toBe(252);
    expect(find(plan({}, host, t).ops, 'mount', '/sys/fs/cgroup/unified')?.fstype).toBe('cgroup2');
  });
  it('hybrid when the tree has systemd >= 233', () => {
    const t = fakeTree({ '/usr/lib/systemd/libsystemd-shared-252.so': '' }, ['/usr', '/usr/lib/systemd']);
    expect(imageSystemdVersion(t)).toBe(252);
    expect(find(plan({}, host, t).ops, 'mount', '/sys/fs/cgroup/unified')?.fstype).toBe('cgroup2');
  });
  it('cgroup2 on a unified host when the tree has systemd >= 230, or with -a', () => {
    const unified: HostFacts = { ...host, cgroups: { kind: 'unified' } };
    const t = fakeTree({ '/usr/lib/systemd/libsystemd-shared-252.so': '' }, ['/usr', '/usr/lib/systemd']);
    expect(find(plan({}, unified, t).ops, 'mount', '/sys/fs/cgroup')?.fstype).toBe('cgroup2');
    expect(find(plan({ startMode: 'pid2' }, unified).ops, 'mount', '/sys/fs/cgroup')?.fstype).toBe('cgroup2');
  });
  it('only the named systemd hierarchy on a unified host for a tree without systemd', () => {
    const ops = plan({}, { ...host, cgroups: { kind: 'unified' } }).ops;
    expect(find(ops, 'mount', '/sys/fs/cgroup')?.fstype).toBe('tmpfs');
    expect(find(ops, 'mount', '/sys/fs/cgroup/systemd')?.data).toBe('none,name=systemd');
    expect(find(ops, 'remount', '/sys/fs/cgroup')!.mountFlags! & MS.RDONLY).toBeTruthy();
  });
  it('co-mounted controllers get symlinks', () => {
    const ops = plan({}, { ...host, cgroups: { kind: 'legacy', hierarchies: [{ name: 'cpu,cpuacct', options: 'cpu,cpuacct' }] } }).ops;
    expect(find(ops, 'symlink', '/sys/fs/cgroup/cpu')?.source).toBe('cpu,cpuacct');
    expect(find(ops, 'symlink', '/sys/fs/cgroup/cpuacct')?.source).toBe('cpu,cpuacct');
  });
});

describe('timezone and resolv.conf (setup_timezone, setup_resolv_conf)', () => {
  it('auto: symlink into the tree zoneinfo when it has the zone', () => {
    const t = fakeTree({ '/usr/share/zoneinfo/Etc/UTC': 'TZif' });
    const ops = plan({}, host, t).ops;
    expect(find(ops, 'symlink', '/etc/localtime')?.source).toBe('../usr/share/zoneinfo/Etc/UTC');
  });
  it('auto: bind the host file when the tree lacks the zone', () => {
    const ops = plan().ops;
    expect(find(ops, 'mount', '/etc/localtime')?.source).toBe('/etc/localtime');
    expect(find(ops, 'remount', '/etc/localtime')!.mountFlags! & MS.RDONLY).toBeTruthy();
  });
  it('auto with a read-only tree binds; off does nothing; a host without localtime deletes', () => {
    expect(find(plan({ readOnly: true }, host, fakeTree({ '/usr/share/zoneinfo/Etc/UTC': '' })).ops, 'mount', '/etc/localtime')).toBeDefined();
    expect(plan({ timezone: 'off' }).ops.some((o) => o.target === '/etc/localtime')).toBe(false);
    const { localtime: _l, ...noTz } = host;
    expect(find(plan({}, noTz as HostFacts).ops, 'rmfile', '/etc/localtime')).toBeDefined();
  });
  it('already the right link: nothing to do', () => {
    const t = fakeTree({ '/usr/share/zoneinfo/Etc/UTC': '' }, ['/usr'], { '/etc/localtime': '../usr/share/zoneinfo/Etc/UTC' });
    expect(plan({}, host, t).ops.some((o) => o.target === '/etc/localtime')).toBe(false);
  });
  it('resolv.conf: copy the host file; off with a private network; bind when read-only', () => {
    expect(find(plan().ops, 'write', '/etc/resolv.conf')?.data).toBe(host.resolvConf);
    expect(plan({ privateNetwork: true }).ops.some((o) => o.target === '/etc/resolv.conf')).toBe(false);
    expect(find(plan({ readOnly: true }).ops, 'mount', '/etc/resolv.conf')?.source).toBe('/etc/resolv.conf');
    expect(find(plan({ resolvConf: 'delete' }).ops, 'rmfile', '/etc/resolv.conf')).toBeDefined();
    const rep = plan({ resolvConf: 'replace-host' }).ops;
    expect(rep.findIndex((o) => o.kind === 'rmfile' && o.target === '/etc/resolv.conf')).toBeLessThan(
      rep.findIndex((o) => o.kind === 'write' && o.target === '/etc/resolv.conf'),
    );
  });
});

describe('custom mounts', () => {
  it('--bind: rbind by default, mount point like the source', () => {
    const ops = plan({ customMounts: [{ type: 'bind', source: '/h', destination: '/c', readOnly: false, recursive: true }] }).ops;
    expect(find(ops, 'mount', '/c')).toMatchObject({ source: '/h', mountFlags: MS.BIND | MS.REC, flags: OpFlag.MKPOINT });
  });
  it('--bind-ro: read-only recursively; norbind remounts one mount', () => {
    const ro = plan({ customMounts: [{ type: 'bind', source: '/h', destination: '/c', readOnly: true, recursive: true }] }).ops;
    expect(find(ro, 'setattr', '/c')).toMatchObject({ mountFlags: MOUNT_ATTR.RDONLY, flags: OpFlag.RECURSIVE });
    const nr = plan({ customMounts: [{ type: 'bind', source: '/h', destination: '/c', readOnly: true, recursive: false }] }).ops;
    expect(find(nr, 'mount', '/c')?.mountFlags).toBe(MS.BIND);
    expect(find(nr, 'remount', '/c')?.mountFlags).toBe(MS.BIND | MS.RDONLY);
  });
  it('+ sources are inside the container', () => {
    const ops = plan({ customMounts: [{ type: 'bind', source: '/a', destination: '/b', readOnly: false, recursive: true, sourceInRoot: true }] }).ops;
    expect(find(ops, 'mount', '/b')!.flags! & OpFlag.SRC_IN_ROOT).toBeTruthy();
  });
  it('--tmpfs', () => {
    const ops = plan({ customMounts: [{ type: 'tmpfs', destination: '/x', options: 'mode=0700' }] }).ops;
    expect(find(ops, 'mount', '/x')).toMatchObject({ fstype: 'tmpfs', data: 'mode=0700', mountFlags: MS.NODEV | MS.STRICTATIME });
  });
  it('--overlay with an upper and a prepared work dir; lower layers top-most first', () => {
    const ops = plan({
      customMounts: [{ type: 'overlay', lowers: ['/l1', '/l2'], upper: '/u', destination: '/o', readOnly: false }],
      overlayScratch: { 0: { upper: '/u', work: '/.#u123' } },
    }).ops;
    expect(find(ops, 'mount', '/o')?.data).toBe('lowerdir=/l2:/l1,upperdir=/u,workdir=/.#u123');
  });
  it('--overlay-ro has only lower layers', () => {
    const ops = plan({ customMounts: [{ type: 'overlay', lowers: ['/l1'], upper: '/u', destination: '/o', readOnly: true }] }).ops;
    expect(find(ops, 'mount', '/o')).toMatchObject({ data: 'lowerdir=/u:/l1', mountFlags: MS.RDONLY });
  });
  it('an overlay without prepared directories is refused', () => {
    expect(() => plan({ customMounts: [{ type: 'overlay', lowers: ['/l'], upper: '', destination: '/o', readOnly: false }] })).toThrow(/upper/);
  });
  it('overlay paths with colons and commas are escaped', () => {
    const ops = plan({
      customMounts: [{ type: 'overlay', lowers: ['/a:b'], upper: '/u,v', destination: '/o', readOnly: false }],
      overlayScratch: { 0: { upper: '/u,v', work: '/w' } },
    }).ops;
    expect(find(ops, 'mount', '/o')?.data).toBe('lowerdir=/a\\:b,upperdir=/u\\,v,workdir=/w');
  });
  it('--inaccessible uses a directory node for directories', () => {
    const ops = plan({ customMounts: [{ type: 'inaccessible', destination: '/usr' }] }).ops;
    expect(find(ops, 'mount', '/usr')?.source).toBe('/run/nspawn/inaccessible/dir');
  });
});

describe('environment, user and command', () => {
  it("systemd-nspawn's environment", () => {
    const env = buildEnvironment(cfg(), host);
    expect(env).toEqual([
      'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      'container=systemd-nspawn',
      'TERM=xterm',
      'HOME=/root',
      'USER=root',
      'LOGNAME=root',
      'container_uuid=01234567-89ab-cdef-0123-456789abcdef',
      'NOTIFY_SOCKET=/run/host/notify',
      'LANG=C.UTF-8',
      'container_host_id=debian',
      'container_host_version_id=12',
    ]);
  });
  it('-b: no LANG (init sets its locale), NOTIFY_SOCKET as for any payload', () => {
    const env = buildEnvironment(cfg({ startMode: 'boot' }), host);
    expect(env).toContain('NOTIFY_SOCKET=/run/host/notify');
    expect(env.some((e) => e.startsWith('LANG='))).toBe(false);
  });
  it('--setenv replaces in place and appends', () => {
    const env = buildEnvironment(cfg({ environment: ['PATH=/bin', 'FOO=bar'] }), host);
    expect(env[0]).toBe('PATH=/bin');
    expect(env.at(-1)).toBe('FOO=bar');
  });
  it('mergeEnv keeps first position, last value', () => {
    expect(mergeEnv(['A=1', 'B=2'], ['A=3', 'C=4'])).toEqual(['A=3', 'B=2', 'C=4']);
  });
  it('--user: ids, groups, HOME, USER, and the home directory is made', () => {
    const user = { name: 'al', uid: 1000, gid: 100, home: '/home/al', shell: '/bin/sh', groups: [100, 5] };
    const p = plan({ user, userName: 'al' });
    expect(p).toMatchObject({ uid: 1000, gid: 100, groups: [100, 5] });
    expect(p.env).toContain('HOME=/home/al');
    expect(p.env).toContain('USER=al');
    expect(find(p.ops, 'chown', '/home/al')).toMatchObject({ mode: 1000, dev: 100 });
  });
  it('a command is searched in the container PATH', () => {
    const p = plan({ parameters: ['ls', '-l'] });
    expect(p.argv).toEqual(['ls', '-l']);
    expect(p.searchPath).toBe(true);
  });
  it('no command: a login shell in HOME', () => {
    const p = plan({ parameters: [] });
    expect(p.fallback).toEqual([
      ['/bin/bash', '-bash'],
      ['/bin/sh', '-sh'],
    ]);
    expect(p.chdir).toBe('/root');
    expect(plan({ parameters: [], workingDirectory: '/tmp' }).chdir).toBe('/tmp');
  });
  it('-b tries the init candidates in order, each with the arguments after the options', () => {
    const p = plan({ startMode: 'boot', parameters: ['--unit=rescue.target', 'quiet'] });
    expect(p.argv).toEqual([]);
    expect(p.fallback).toEqual([
      ['/usr/lib/systemd/systemd', '/usr/lib/systemd/systemd'],
      ['/lib/systemd/systemd', '/lib/systemd/systemd'],
      ['/sbin/init', '/sbin/init'],
    ]);
    expect(p.fallbackArgs).toEqual(['--unit=rescue.target', 'quiet']);
    expect(plan({ startMode: 'boot', parameters: [] }).fallbackArgs).toBeUndefined();
  });
  it("a newline after the forwarded console output, unless quiet (ptyfwd's last character)", () => {
    expect(plan({ console: 'read-only' }).finalNewline).toBe(true);
    expect(plan({ console: 'interactive' }).finalNewline).toBe(true);
    expect(plan({ console: 'read-only', quiet: true }).finalNewline).toBeUndefined();
    expect(plan({ console: 'passive' }).finalNewline).toBeUndefined();
    expect(plan({ console: 'pipe' }).finalNewline).toBeUndefined();
  });
  it('the notify socket is bound in /run/host before it goes read-only', () => {
    const ops = plan().ops;
    const notify = ops.findIndex((o) => o.kind === 'notify' && o.target === '/run/host/notify');
    const ro = ops.findIndex((o) => o.kind === 'remount' && o.target === '/run/host');
    expect(notify).toBeGreaterThan(ops.findIndex((o) => o.kind === 'mount' && o.target === '/run/host'));
    expect(notify).toBeLessThan(ro);
  });
  it('journal operations decided on the host replace the default /var/log/journal directories', () => {
    const journalOps: Op[] = [{ kind: 'mount', source: '/var/log/journal/x', target: '/var/log/journal/x', mountFlags: MS.BIND }];
    expect(targets(plan().ops, 'mkdir')).toContain('/var/log/journal');
    const ops = plan({ journalOps }).ops;
    expect(targets(ops, 'mkdir')).not.toContain('/var/log/journal');
    expect(find(ops, 'mount', '/var/log/journal/x')?.source).toBe('/var/log/journal/x');
  });
  it('-a runs a stub init with the container uuid', () => {
    const p = plan({ startMode: 'pid2' });
    expect(p.asPid2).toBe(true);
    expect(p.stubEnv).toEqual(['container=systemd-nspawn', 'container_uuid=0123456789abcdef0123456789abcdef']);
  });
  it('--personality=x86 selects PER_LINUX32', () => {
    expect(plan({ personality: 'x86' }).personality).toBe(8);
    expect(plan().personality).toBeUndefined();
  });
});

describe('rlimits (initialize_rlimits)', () => {
  it('kernel defaults, PID 1 values for NPROC/SIGPENDING, NOFILE hard raised', () => {
    const r = buildRlimits(cfg(), host);
    const by = Object.fromEntries(r.map((x) => [x.resource, [x.soft, x.hard]]));
    expect(by[7]).toEqual([1024n, 524288n]);
    expect(by[4]).toEqual([0n, 'infinity']);
    expect(by[6]).toEqual([95000n, 95000n]);
    expect(by[3]).toEqual([8388608n, 'infinity']);
  });
  it('NOFILE hard is capped by nr_open', () => {
    const r = buildRlimits(cfg(), { ...host, nrOpen: 4096 });
    expect(r.find((x) => x.resource === 7)?.hard).toBe(4096n);
  });
  it('the user wins', () => {
    const r = buildRlimits(cfg({ rlimits: { NOFILE: { soft: 10n, hard: 20n } } }), host);
    expect(r.find((x) => x.resource === 7)).toEqual({ resource: 7, soft: 10n, hard: 20n });
  });
});
