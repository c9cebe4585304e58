import { describe, expect, it } from 'vitest';
import { formatDiagnostic, type Settings } from './model.js';
import { parseNspawnFile } from './nspawn-file.js';
import { NSPAWN_KEYS } from './nspawn-keys.js';

const CWD = '/srv/cwd';

function parse(section: string, key: string, ...values: string[]) {
  const text = `[${section}]\n${values.map((v) => `${key}=${v}`).join('\n')}\n`;
  return parseNspawnFile(text, { path: '/etc/systemd/nspawn/m.nspawn', cwd: CWD });
}

type Row = [section: string, key: string, value: string, expected: Settings];

/** Valid values: the settings they produce (after the PrivateUsers fix-up). */
const VALID: Row[] = [
  ['Exec', 'Boot', 'yes', { startMode: 'boot' }],
  ['Exec', 'Boot', 'no', { startMode: 'pid1' }],
  ['Exec', 'Boot', 'ON', { startMode: 'boot' }],
  ['Exec', 'ProcessTwo', 'true', { startMode: 'pid2' }],
  ['Exec', 'ProcessTwo', '0', { startMode: 'pid1' }],
  ['Exec', 'Ephemeral', 'yes', { ephemeral: true }],
  ['Exec', 'Ephemeral', 'f', { ephemeral: false }],
  ['Exec', 'Ephemeral', '', {}],
  ['Exec', 'Parameters', '/bin/sh -c "echo a  b" \'x"y\'', { parameters: ['/bin/sh', '-c', 'echo a  b', 'x"y'] }],
  ['Exec', 'Parameters', 'a\\b "c\\"', { parameters: ['a\\b', 'c\\'] }],
  ['Exec', 'Parameters', '""', { parameters: [''] }],
  ['Exec', 'Parameters', '', {}],
  ['Exec', 'Environment', 'A=1 "B=two words" C', { environment: ['A=1', 'B=two words', 'C'] }],
  ['Exec', 'User', 'daemon', { user: 'daemon' }],
  ['Exec', 'User', 'some user', { user: 'some user' }],
  ['Exec', 'User', '', {}],
  ['Exec', 'Capability', 'CAP_NET_ADMIN cap_sys_admin 0', { capability: ['CAP_CHOWN', 'CAP_NET_ADMIN', 'CAP_SYS_ADMIN'] }],
  ['Exec', 'Capability', 'all CAP_CHOWN', { capability: ['all'] }],
  ['Exec', 'Capability', '41 62', { capability: ['41', '62'] }],
  ['Exec', 'Capability', '', {}],
  ['Exec', 'AmbientCapability', 'CAP_CHOWN', { ambientCapability: ['CAP_CHOWN'] }],
  ['Exec', 'DropCapability', 'CAP_MKNOD CAP_MKNOD', { dropCapability: ['CAP_MKNOD'] }],
  ['Exec', 'KillSignal', 'SIGRTMIN+3', { killSignal: 37 }],
  ['Exec', 'KillSignal', 'TERM', { killSignal: 15 }],
  ['Exec', 'KillSignal', '9', { killSignal: 9 }],
  ['Exec', 'KillSignal', 'RTMAX-1', { killSignal: 63 }],
  ['Exec', 'Personality', 'x86', { personality: 'x86' }],
  ['Exec', 'Personality', 'x86-64', { personality: 'x86-64' }],
  ['Exec', 'Personality', '', {}],
  ['Exec', 'MachineID', '0123456789ABCDEF0123456789abcdef', { machineId: '0123456789abcdef0123456789abcdef' }],
  ['Exec', 'MachineID', '01234567-89ab-cdef-0123-456789abcdef', { machineId: '0123456789abcdef0123456789abcdef' }],
  ['Exec', 'WorkingDirectory', '//srv/./app/', { workingDirectory: '/srv/app' }],
  ['Exec', 'WorkingDirectory', '/../x', { workingDirectory: '/x' }],
  ['Exec', 'WorkingDirectory', '', {}],
  ['Exec', 'PivotRoot', '/sysroot', { pivotRoot: { newRoot: '/sysroot' } }],
  ['Exec', 'PivotRoot', '/sysroot:/oldroot', { pivotRoot: { newRoot: '/sysroot', oldRoot: '/oldroot' } }],
  ['Exec', 'PrivateUsers', 'yes', { privateUsers: { mode: 'fixed', range: 65536 }, privateUsersOwnership: 'off' }],
  ['Exec', 'PrivateUsers', '1', { privateUsers: { mode: 'fixed', range: 65536 }, privateUsersOwnership: 'off' }],
  ['Exec', 'PrivateUsers', 'no', { privateUsers: { mode: 'no' }, privateUsersOwnership: 'off' }],
  ['Exec', 'PrivateUsers', 'pick', { privateUsers: { mode: 'pick', range: 65536 }, privateUsersOwnership: 'chown' }],
  ['Exec', 'PrivateUsers', 'identity', { privateUsers: { mode: 'fixed', shift: 0, range: 65536 }, privateUsersOwnership: 'off' }],
  ['Exec', 'PrivateUsers', '1000000:65536', { privateUsers: { mode: 'fixed', shift: 1000000, range: 65536 }, privateUsersOwnership: 'off' }],
  ['Exec', 'PrivateUsers', '100000:0x100', { privateUsers: { mode: 'fixed', shift: 100000, range: 256 }, privateUsersOwnership: 'off' }],
  ['Exec', 'NotifyReady', 'yes', { notifyReady: true }],
  ['Exec', 'SystemCallFilter', '@basic-io write', { systemCallFilter: { allow: ['@basic-io', 'write'], deny: [] } }],
  ['Exec', 'SystemCallFilter', '~@obsolete', { systemCallFilter: { allow: [], deny: ['@obsolete'] } }],
  ['Exec', 'SystemCallFilter', '', {}],
  ['Exec', 'LimitCPU', '1h:infinity', { rlimits: { CPU: { soft: 3600n, hard: 'infinity' } } }],
  ['Exec', 'LimitCPU', '1.5', { rlimits: { CPU: { soft: 2n, hard: 2n } } }],
  ['Exec', 'LimitFSIZE', '1K', { rlimits: { FSIZE: { soft: 1024n, hard: 1024n } } }],
  ['Exec', 'LimitDATA', '1G 512M', { rlimits: { DATA: { soft: 1610612736n, hard: 1610612736n } } }],
  ['Exec', 'LimitSTACK', '8M:infinity', { rlimits: { STACK: { soft: 8388608n, hard: 'infinity' } } }],
  ['Exec', 'LimitCORE', '0', { rlimits: { CORE: { soft: 0n, hard: 0n } } }],
  ['Exec', 'LimitRSS', '1.5K', { rlimits: { RSS: { soft: 1536n, hard: 1536n } } }],
  ['Exec', 'LimitNOFILE', '1024:0x1000', { rlimits: { NOFILE: { soft: 1024n, hard: 4096n } } }],
  ['Exec', 'LimitAS', 'infinity', { rlimits: { AS: { soft: 'infinity', hard: 'infinity' } } }],
  ['Exec', 'LimitNPROC', '100', { rlimits: { NPROC: { soft: 100n, hard: 100n } } }],
  ['Exec', 'LimitMEMLOCK', '64K', { rlimits: { MEMLOCK: { soft: 65536n, hard: 65536n } } }],
  ['Exec', 'LimitLOCKS', '10', { rlimits: { LOCKS: { soft: 10n, hard: 10n } } }],
  ['Exec', 'LimitSIGPENDING', '10:20', { rlimits: { SIGPENDING: { soft: 10n, hard: 20n } } }],
  ['Exec', 'LimitMSGQUEUE', '800K', { rlimits: { MSGQUEUE: { soft: 819200n, hard: 819200n } } }],
  ['Exec', 'LimitNICE', '+19', { rlimits: { NICE: { soft: 1n, hard: 1n } } }],
  ['Exec', 'LimitNICE', '-20', { rlimits: { NICE: { soft: 40n, hard: 40n } } }],
  ['Exec', 'LimitNICE', '40', { rlimits: { NICE: { soft: 40n, hard: 40n } } }],
  ['Exec', 'LimitRTPRIO', '99', { rlimits: { RTPRIO: { soft: 99n, hard: 99n } } }],
  ['Exec', 'LimitRTTIME', '1ms', { rlimits: { RTTIME: { soft: 1000n, hard: 1000n } } }],
  ['Exec', 'Hostname', 'web-1.example.com', { hostname: 'web-1.example.com' }],
  ['Exec', 'Hostname', '', {}],
  ['Exec', 'NoNewPrivileges', 'yes', { noNewPrivileges: true }],
  ['Exec', 'OOMScoreAdjust', '-1000', { oomScoreAdjust: -1000 }],
  ['Exec', 'OOMScoreAdjust', '0x10', { oomScoreAdjust: 16 }],
  ['Exec', 'OOMScoreAdjust', '', {}],
  ['Exec', 'CPUAffinity', '0,2 4-6', { cpuAffinity: [0, 2, 4, 5, 6] }],
  ['Exec', 'CPUAffinity', '', {}],
  ['Exec', 'ResolvConf', 'bind-stub', { resolvConf: 'bind-stub' }],
  ['Exec', 'ResolvConf', 'yes', { resolvConf: 'auto' }],
  ['Exec', 'ResolvConf', 'no', { resolvConf: 'off' }],
  ['Exec', 'LinkJournal', 'try-guest', { linkJournal: 'guest', linkJournalTry: true }],
  ['Exec', 'LinkJournal', 'host', { linkJournal: 'host', linkJournalTry: false }],
  ['Exec', 'LinkJournal', 'yes', { linkJournal: 'auto', linkJournalTry: false }],
  ['Exec', 'LinkJournal', 'false', { linkJournal: 'no', linkJournalTry: false }],
  ['Exec', 'Timezone', 'symlink', { timezone: 'symlink' }],
  ['Exec', 'Timezone', 'yes', { timezone: 'auto' }],
  ['Exec', 'SuppressSync', 'yes', { suppressSync: true }],
  ['Files', 'ReadOnly', 'yes', { readOnly: true }],
  ['Files', 'Volatile', 'state', { volatile: 'state' }],
  ['Files', 'Volatile', 'overlay', { volatile: 'overlay' }],
  ['Files', 'Volatile', 'yes', { volatile: 'yes' }],
  ['Files', 'Volatile', 'off', { volatile: 'no' }],
  ['Files', 'Bind', '/srv/data', { customMounts: [{ type: 'bind', source: '/srv/data', destination: '/srv/data', readOnly: false, recursive: true }] }],
  ['Files', 'Bind', '/a\\:b:/c', { customMounts: [{ type: 'bind', source: '/a:b', destination: '/c', readOnly: false, recursive: true }] }],
  ['Files', 'Bind', 'rel:/c', { customMounts: [{ type: 'bind', source: `${CWD}/rel`, destination: '/c', readOnly: false, recursive: true }] }],
  ['Files', 'Bind', '+/var/x', { customMounts: [{ type: 'bind', source: '/var/x', sourceInRoot: true, destination: '/var/x', readOnly: false, recursive: true }] }],
  ['Files', 'Bind', ':/scratch', { customMounts: [{ type: 'bind', source: '', destination: '/scratch', readOnly: false, recursive: true }] }],
  // 252 reads Bind='s options only when it mounts: a bad one is taken here and fails the start (bindMountOptionsError())
  ['Files', 'Bind', '/a:/b:bogus', { customMounts: [{ type: 'bind', source: '/a', destination: '/b', readOnly: false, recursive: true, options: 'bogus' }] }],
  [
    'Files',
    'Bind',
    '/a:/b:norbind,idmap',
    { customMounts: [{ type: 'bind', source: '/a', destination: '/b', readOnly: false, recursive: false, options: 'norbind,idmap', idmapping: 'idmap', idmap: true }] },
  ],
  [
    'Files',
    'Bind',
    '/a:/b:rootidmap',
    { customMounts: [{ type: 'bind', source: '/a', destination: '/b', readOnly: false, recursive: true, options: 'rootidmap', idmapping: 'rootidmap', idmap: true }] },
  ],
  ['Files', 'BindReadOnly', '/etc/resolv.conf:/etc/r', { customMounts: [{ type: 'bind', source: '/etc/resolv.conf', destination: '/etc/r', readOnly: true, recursive: true }] }],
  ['Files', 'TemporaryFileSystem', '/var/tmp', { customMounts: [{ type: 'tmpfs', destination: '/var/tmp', options: 'mode=0755' }] }],
  ['Files', 'TemporaryFileSystem', '/run/x:size=10M,mode=0700', { customMounts: [{ type: 'tmpfs', destination: '/run/x', options: 'size=10M,mode=0700' }] }],
  ['Files', 'Inaccessible', '/proc/kcore', { customMounts: [{ type: 'inaccessible', destination: '/proc/kcore' }] }],
  ['Files', 'Overlay', '/lower:/upper', { customMounts: [{ type: 'overlay', lowers: ['/lower'], upper: '/upper', destination: '/upper', readOnly: false }] }],
  ['Files', 'Overlay', '+/l:+/u', { customMounts: [{ type: 'overlay', lowers: ['+/l'], upper: '+/u', destination: '/u', readOnly: false }] }],
  ['Files', 'OverlayReadOnly', '/l1:/l2::/dst', { customMounts: [{ type: 'overlay', lowers: ['/l1', '/l2'], upper: '', destination: '/dst', readOnly: true }] }],
  ['Files', 'PrivateUsersChown', 'yes', { privateUsersOwnership: 'chown', privateUsers: { mode: 'no' } }],
  ['Files', 'PrivateUsersOwnership', 'map', { privateUsersOwnership: 'map', privateUsers: { mode: 'no' } }],
  ['Files', 'PrivateUsersOwnership', 'foreign', { privateUsersOwnership: 'foreign', privateUsers: { mode: 'no' } }],
  ['Files', 'PrivateUsersOwnership', 'yes', { privateUsersOwnership: 'auto', privateUsers: { mode: 'no' } }],
  ['Files', 'BindUser', 'alice bob_2', { bindUser: ['alice', 'bob_2'] }],
  ['Files', 'BindUser', '', {}],
  ['Files', 'BindUserShell', '/bin/zsh', { bindUserShell: '/bin/zsh' }],
  ['Files', 'BindUserShell', 'yes', { bindUserShell: true }],
  ['Files', 'BindUserShell', 'no', { bindUserShell: false }],
  ['Files', 'BindUserShell', '', {}],
  ['Network', 'Private', 'yes', { privateNetwork: true }],
  ['Network', 'NamespacePath', '/run/netns/foo', { networkNamespacePath: '/run/netns/foo' }],
  ['Network', 'Interface', 'eth1 eth2:host0', { networkInterfaces: ['eth1', 'eth2:host0'] }],
  // 252 reads these as config_parse_strv(): any word, the start fails for an interface that does not exist
  ['Network', 'Interface', 'bad/name', { networkInterfaces: ['bad/name'] }],
  ['Network', 'MACVLAN', 'all', { networkMacvlan: ['all'] }],
  ['Network', 'Interface', '', {}],
  ['Network', 'MACVLAN', 'eth0', { networkMacvlan: ['eth0'] }],
  ['Network', 'IPVLAN', 'eth0:iv0', { networkIpvlan: ['eth0:iv0'] }],
  ['Network', 'VirtualEthernet', 'no', { networkVeth: false }],
  ['Network', 'VirtualEthernetExtra', 've-x', { networkVethExtra: ['ve-x'] }],
  ['Network', 'VirtualEthernetExtra', 've-x:host1', { networkVethExtra: ['ve-x:host1'] }],
  ['Network', 'VirtualEthernetExtra', 've-x:bad/name', { networkVethExtra: ['ve-x'] }],
  ['Network', 'Bridge', 'br0', { networkBridge: 'br0' }],
  ['Network', 'Bridge', '', {}],
  ['Network', 'Zone', 'web', { networkZone: 'web' }],
  ['Network', 'Zone', '', { networkZone: '' }],
  ['Network', 'Port', '80', { exposePorts: [{ protocol: 'tcp', hostPort: 80, containerPort: 80 }] }],
  ['Network', 'Port', 'udp:53:5353', { exposePorts: [{ protocol: 'udp', hostPort: 53, containerPort: 5353 }] }],
  ['Network', 'Port', '0x50', { exposePorts: [{ protocol: 'tcp', hostPort: 80, containerPort: 80 }] }],
];

/** Invalid values: the start of the diagnostic's message. systemd ignores these lines. */
const INVALID: Array<[section: string, key: string, value: string, message: string]> = [
  ['Exec', 'Boot', 'maybe', 'Failed to parse Boot= parameter'],
  ['Exec', 'Boot', '', 'Failed to parse Boot= parameter'],
  ['Exec', 'ProcessTwo', 'sometimes', 'Failed to parse ProcessTwo= parameter'],
  ['Exec', 'Ephemeral', 'perhaps', 'Failed to parse boolean value'],
  ['Exec', 'Parameters', '"unbalanced', 'Invalid syntax'],
  ['Exec', 'Environment', "A='x", 'Invalid syntax'],
  ['Exec', 'User', 'ro"ot', 'Specified string contains unsafe characters'],
  ['Exec', 'User', 'a\\b', 'Specified string contains unsafe characters'],
  ['Exec', 'Capability', 'sys_admin', 'Failed to parse capability, ignoring: sys_admin'],
  ['Exec', 'Capability', '63', 'Failed to parse capability, ignoring: 63'],
  ['Exec', 'Capability', 'CAP_CHOWN\\ ', 'Failed to extract capability string'],
  ['Exec', 'AmbientCapability', 'CAP_NOPE', 'Failed to parse capability'],
  ['Exec', 'DropCapability', '-1', 'Failed to parse capability'],
  ['Exec', 'KillSignal', 'SIGFOO', 'Failed to parse signal'],
  ['Exec', 'KillSignal', '65', 'Failed to parse signal, ignoring: Numerical result out of range'],
  ['Exec', 'KillSignal', 'RTMIN+31', 'Failed to parse signal, ignoring: Numerical result out of range'],
  ['Exec', 'KillSignal', '', 'Failed to parse signal'],
  ['Exec', 'Personality', 'arm64', 'Unknown or unsupported personality'],
  ['Exec', 'MachineID', 'xyz', 'Failed to parse 128-bit ID/UUID'],
  ['Exec', 'MachineID', '', 'Failed to parse 128-bit ID/UUID'],
  ['Exec', 'MachineID', '00000000000000000000000000000000', '128-bit ID/UUID is all 0'],
  ['Exec', 'WorkingDirectory', 'relative', 'Path is not absolute'],
  ['Exec', 'WorkingDirectory', '/a/../b', 'Path is not normalized'],
  ['Exec', 'WorkingDirectory', `/${'x'.repeat(256)}`, 'Path has invalid length'],
  ['Exec', 'PivotRoot', 'relative', 'Invalid pivot root mount specification'],
  ['Exec', 'PivotRoot', '/new:old', 'Invalid pivot root mount specification'],
  ['Exec', 'PivotRoot', '', 'Invalid pivot root mount specification'],
  ['Exec', 'PrivateUsers', 'abc', 'UID/GID shift invalid, ignoring: (null)'],
  ['Exec', 'PrivateUsers', '', 'UID/GID shift invalid, ignoring: (null)'],
  ['Exec', 'PrivateUsers', '5:x', 'UID/GID range invalid, ignoring: x'],
  ['Exec', 'PrivateUsers', '5:0', 'UID/GID shift and range combination invalid, ignoring: 0'],
  ['Exec', 'PrivateUsers', '4294967294:2', 'UID/GID shift and range combination invalid'],
  ['Exec', 'PrivateUsers', '65535', 'UID/GID shift invalid'],
  ['Exec', 'NotifyReady', 'later', 'Failed to parse boolean value'],
  ['Exec', 'SystemCallFilter', 'write\\ ', 'Failed to parse SystemCallFilter= parameter'],
  ...(['CPU', 'FSIZE', 'DATA', 'STACK', 'CORE', 'RSS', 'NOFILE', 'AS', 'NPROC', 'MEMLOCK', 'LOCKS', 'SIGPENDING', 'MSGQUEUE', 'NICE', 'RTPRIO', 'RTTIME'].map(
    (n): [string, string, string, string] => ['Exec', `Limit${n}`, 'lots', 'Failed to parse resource limit'],
  )),
  ['Exec', 'LimitNOFILE', '', 'Failed to parse resource limit'],
  ['Exec', 'LimitNOFILE', '10:5', 'Soft resource limit chosen higher than hard limit'],
  ['Exec', 'LimitNOFILE', '1:2:3', 'Failed to parse resource limit'],
  ['Exec', 'LimitNOFILE', '-1', 'Failed to parse resource limit, ignoring: Numerical result out of range'],
  ['Exec', 'LimitNOFILE', '18446744073709551615', 'Failed to parse resource limit, ignoring: Numerical result out of range'],
  ['Exec', 'LimitNICE', '+20', 'Failed to parse resource limit, ignoring: Numerical result out of range'],
  ['Exec', 'LimitNICE', '41', 'Failed to parse resource limit'],
  ['Exec', 'LimitCPU', '-5', 'Failed to parse resource limit, ignoring: Numerical result out of range'],
  ['Exec', 'LimitCPU', '1.', 'Failed to parse resource limit'],
  ['Exec', 'LimitAS', '20E', 'Failed to parse resource limit, ignoring: Numerical result out of range'],
  ['Exec', 'LimitAS', '1KK', 'Failed to parse resource limit'],
  ['Exec', 'Hostname', 'bad_host', 'Specified invalid hostname'],
  ['Exec', 'Hostname', '-x', 'Specified invalid hostname'],
  ['Exec', 'Hostname', 'a'.repeat(64), 'Specified invalid DNS domain name'],
  ['Exec', 'NoNewPrivileges', '2', 'Failed to parse boolean value'],
  ['Exec', 'OOMScoreAdjust', '1001', 'OOM score adjust value out of range'],
  ['Exec', 'OOMScoreAdjust', 'lots', 'Failed to parse the OOM score adjust value'],
  ['Exec', 'CPUAffinity', '3-1', "Range '3-1' is invalid, 3 > 1, ignoring."],
  ['Exec', 'ResolvConf', 'sometimes', 'Failed to parse resolv.conf mode'],
  ['Exec', 'ResolvConf', '', 'Failed to parse resolv.conf mode'],
  ['Exec', 'LinkJournal', 'guest-ish', 'Failed to parse link journal mode'],
  ['Exec', 'Timezone', 'utc', 'Failed to parse timezone mode'],
  ['Exec', 'SuppressSync', 'x', 'Failed to parse boolean value'],
  ['Files', 'ReadOnly', 'ro', 'Failed to parse boolean value'],
  ['Files', 'Volatile', 'sometimes', 'Failed to parse volatile mode'],
  ['Files', 'Volatile', '', 'Failed to parse volatile mode'],
  ['Files', 'Bind', 'relative', 'Invalid bind mount specification'],
  ['Files', 'Bind', '', 'Invalid bind mount specification'],
  ['Files', 'Bind', '/a:rel', 'Invalid bind mount specification'],
  ['Files', 'Bind', '+rel:/x', 'Invalid bind mount specification'],
  ['Files', 'Bind', '/a\\ ', 'Invalid bind mount specification'],
  ['Files', 'BindReadOnly', '/a::', 'Invalid bind mount specification'],
  ['Files', 'TemporaryFileSystem', 'relative', 'Invalid temporary file system specification'],
  ['Files', 'TemporaryFileSystem', '', 'Invalid temporary file system specification'],
  ['Files', 'Inaccessible', 'relative', 'Invalid inaccessible file system specification'],
  ['Files', 'Overlay', '/only-one', 'Invalid overlay file system specification, ignoring: Cannot assign requested address'],
  ['Files', 'Overlay', '/l:', 'Invalid overlay file system specification'],
  ['Files', 'OverlayReadOnly', '/a:/b:relative', 'Invalid overlay file system specification'],
  ['Files', 'PrivateUsersChown', 'maybe', 'Failed to parse user namespace ownership mode'],
  ['Files', 'PrivateUsersOwnership', 'chmod', 'Failed to parse user namespace ownership mode'],
  ['Files', 'BindUser', '9bad', "User name '9bad' not valid"],
  ['Files', 'BindUser', 'ok\\ ', 'Failed to parse BindUser= list'],
  ['Files', 'BindUserShell', 'zsh', 'Failed to parse BindUserShell= value'],
  ['Files', 'BindUserShell', '/bin/../zsh', 'Failed to parse BindUserShell= value'],
  ['Network', 'Private', 'maybe', 'Failed to parse boolean value'],
  ['Network', 'NamespacePath', 'netns', 'Path is not absolute'],
  ['Network', 'VirtualEthernet', 'perhaps', 'Failed to parse boolean value'],
  ['Network', 'VirtualEthernetExtra', 'a:b:c', 'Invalid extra virtual Ethernet link specification'],
  ['Network', 'VirtualEthernetExtra', '', 'Invalid extra virtual Ethernet link specification'],
  ['Network', 'VirtualEthernetExtra', '123', 'Invalid extra virtual Ethernet link specification'],
  ['Network', 'Bridge', 'this-name-is-way-too-long', 'Interface name is not valid or too long'],
  ['Network', 'Bridge', 'all', 'Interface name is not valid or too long'],
  ['Network', 'Zone', 'this-zone-name-is-too-long', 'Invalid network zone name'],
  ['Network', 'Port', '99999', 'Failed to parse host port: Numerical result out of range'],
  ['Network', 'Port', '080', 'Failed to parse host port: Invalid argument'],
  ['Network', 'Port', 'sctp:80', 'Failed to parse host port'],
  ['Network', 'Port', '', 'Failed to parse host port'],
  ['Network', 'Port', '0', 'Failed to parse host port'],
  ['Network', 'Interface', '"eth0', 'Invalid syntax'],
  ['Network', 'MACVLAN', "'eth0", 'Invalid syntax'],
  ['Network', 'IPVLAN', '"a b', 'Invalid syntax'],
];

/** Invalid values that make systemd refuse the whole file. */
const FATAL: Array<[section: string, key: string, value: string, message: string]> = [
  // systemd-nspawn 252's parse_cpu_set_extend(): these words fail the whole file (v259 ignores them)
  ['Exec', 'CPUAffinity', 'x', "Failed to parse CPU affinity 'x'"],
  ['Exec', 'CPUAffinity', '8192', 'Cannot add CPU 8192 to set: Numerical result out of range'],
  ['Exec', 'CPUAffinity', '"0', 'Invalid value for CPUAffinity: "0'],
];

describe('every .nspawn key', () => {
  it('has valid and invalid examples in these tables', () => {
    const names = (rows: ReadonlyArray<readonly [string, string, ...unknown[]]>) => new Set(rows.map((r) => `${r[0]}.${r[1]}`));
    const valid = names(VALID);
    const invalid = new Set([...names(INVALID), ...names(FATAL)]);
    for (const k of NSPAWN_KEYS) {
      expect(valid, `${k.section}.${k.key} valid`).toContain(`${k.section}.${k.key}`);
      expect(invalid, `${k.section}.${k.key} invalid`).toContain(`${k.section}.${k.key}`);
    }
    expect(NSPAWN_KEYS.length).toBe(63); // the entries of v259 nspawn-gperf.gperf
  });

  it.each(VALID)('[%s] %s=%s', (section, key, value, expected) => {
    const r = parse(section, key, value);
    expect(r.diagnostics).toEqual([]);
    expect(r.settings).toEqual(expected);
  });

  it.each(INVALID)('[%s] %s=%s is ignored with a warning', (section, key, value, message) => {
    const r = parse(section, key, value);
    expect(r.fatal).toBe(false);
    expect(r.diagnostics.length).toBeGreaterThanOrEqual(1);
    const d = r.diagnostics[0]!;
    const stripped = value.trim(); // systemd strips the value (a trailing "\\ " keeps a backslash at its end)
    expect(d).toMatchObject({ severity: 'warning', file: '/etc/systemd/nspawn/m.nspawn', line: 2, key, value: stripped });
    expect(d.message.startsWith(message), d.message).toBe(true);
    expect(formatDiagnostic(d)).toBe(`/etc/systemd/nspawn/m.nspawn:2: ${key}=${stripped}: ${d.message}`);
  });

  it.each(INVALID)('[%s] %s=%s leaves the earlier value alone', (section, key, value) => {
    const good = VALID.find((v) => v[0] === section && v[1] === key && Object.keys(v[3]).length > 0)!;
    const before = parse(section, key, good[2]).settings;
    const r = parse(section, key, good[2], value);
    // capabilities, CPU sets and BindUser= keep the good words of a partly bad value; nothing here has any
    expect(r.settings).toEqual(before);
  });

  it.each(FATAL)('[%s] %s=%s refuses the whole file', (section, key, value, message) => {
    const r = parse(section, key, value);
    expect(r.fatal).toBe(true);
    expect(r.settings).toEqual({});
    expect(r.diagnostics).toHaveLength(1);
    expect(r.diagnostics[0]).toMatchObject({ severity: 'error', line: 2, key, value: value.trim() });
    expect(r.diagnostics[0]!.message.startsWith(message), r.diagnostics[0]!.message).toBe(true);
  });
});

describe('list and interplay semantics', () => {
  it('appends repeated list keys and resets them with an empty value', () => {
    expect(parse('Exec', 'Environment', 'A=1', 'B=2').settings).toEqual({ environment: ['A=1', 'B=2'] });
    expect(parse('Exec', 'Environment', 'A=1', '', 'C=3').settings).toEqual({ environment: ['C=3'] });
    expect(parse('Exec', 'Parameters', 'a', '', '').settings).toEqual({});
    expect(parse('Files', 'BindUser', 'a', 'b', '', 'c').settings).toEqual({ bindUser: ['c'] });
    expect(parse('Exec', 'CPUAffinity', '1', '0', '', '3').settings).toEqual({ cpuAffinity: [3] });
    expect(parse('Network', 'Port', '80', 'udp:80', '81:82').settings.exposePorts).toHaveLength(3);
  });

  it('does not reset capability, syscall filter, mount and interface lists with an empty value', () => {
    expect(parse('Exec', 'Capability', 'CAP_CHOWN', '').settings).toEqual({ capability: ['CAP_CHOWN'] });
    expect(parse('Exec', 'SystemCallFilter', 'read', '~', '').settings).toEqual({ systemCallFilter: { allow: ['read'], deny: [] } });
  });

  it('resets the interface lists with an empty value (252: config_parse_strv())', () => {
    expect(parse('Network', 'Interface', 'eth1', '').settings).toEqual({});
    expect(parse('Network', 'MACVLAN', 'eth1', '', 'eth2').settings).toEqual({ networkMacvlan: ['eth2'] });
  });

  it('lets the last scalar assignment win', () => {
    expect(parse('Exec', 'Hostname', 'a', 'b').settings).toEqual({ hostname: 'b' });
    expect(parse('Exec', 'Hostname', 'a', '').settings).toEqual({});
    expect(parse('Exec', 'LimitNOFILE', '1', '2').settings).toEqual({ rlimits: { NOFILE: { soft: 2n, hard: 2n } } });
  });

  it('keeps the valid words of a partly invalid capability, CPU, syscall or user list', () => {
    const caps = parse('Exec', 'Capability', 'CAP_CHOWN bogus CAP_KILL');
    expect(caps.settings).toEqual({ capability: ['CAP_CHOWN', 'CAP_KILL'] });
    expect(caps.diagnostics.map((d) => d.message)).toEqual(['Failed to parse capability, ignoring: bogus']);
    const cpus = parse('Exec', 'CPUAffinity', '1 3-2 2');
    expect(cpus.settings).toEqual({ cpuAffinity: [1, 2] });
    expect(cpus.diagnostics).toHaveLength(1);
    expect(parse('Exec', 'SystemCallFilter', 'read write\\ ').settings).toEqual({ systemCallFilter: { allow: ['read'], deny: [] } });
    expect(parse('Files', 'BindUser', 'alice 9bad carol').settings).toEqual({ bindUser: ['alice'] });
  });

  it('handles Boot= and ProcessTwo= together as systemd does', () => {
    const f = (...lines: string[]) => parseNspawnFile(`[Exec]\n${lines.join('\n')}\n`, { path: 'f' });
    expect(f('ProcessTwo=yes', 'Boot=no').settings).toEqual({ startMode: 'pid2' });
    expect(f('Boot=no', 'ProcessTwo=yes').settings).toEqual({ startMode: 'pid2' });
    expect(f('Boot=yes', 'ProcessTwo=yes').diagnostics[0]?.message).toBe('Conflicting Boot= or ProcessTwo= setting found. Ignoring.');
    expect(f('Boot=yes', 'ProcessTwo=yes').settings).toEqual({ startMode: 'boot' });
    expect(f('Boot=yes', 'ProcessTwo=no')).toMatchObject({ settings: { startMode: 'boot' }, diagnostics: [] });
    expect(f('ProcessTwo=yes', 'Boot=yes').settings).toEqual({ startMode: 'pid2' });
    expect(f('Boot=yes', 'Boot=no').diagnostics).toHaveLength(1);
  });

  it('sets PrivateUsers= and the ownership mode together', () => {
    const f = (t: string) => parseNspawnFile(t, { path: 'f' }).settings;
    expect(f('[Exec]\nPrivateUsers=pick\n[Files]\nPrivateUsersOwnership=map\n')).toEqual({
      privateUsers: { mode: 'pick', range: 65536 },
      privateUsersOwnership: 'map',
    });
    expect(f('[Files]\nPrivateUsersChown=no\nPrivateUsersOwnership=auto\n')).toEqual({ privateUsers: { mode: 'no' }, privateUsersOwnership: 'auto' });
  });

  it('keeps bind, tmpfs, overlay and inaccessible mounts in file order', () => {
    const r = parseNspawnFile('[Files]\nInaccessible=/a\nBind=/b\nTemporaryFileSystem=/c\nOverlay=/d:/e\n', { path: 'f' });
    expect(r.settings.customMounts?.map((m) => m.type)).toEqual(['inaccessible', 'bind', 'tmpfs', 'overlay']);
  });
});
