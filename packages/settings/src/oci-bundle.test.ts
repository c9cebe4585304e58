// parseOciBundle(): each field of config.json as systemd-nspawn 252 (v252.31, Debian's 252.39) reads it, each refusal
// with its wording, malformed JSON; mergeOciBundle(): what the command line keeps.
import { describe, expect, it } from 'vitest';
import { parseCommandLine } from './cli-args.js';
import { loadOciBundle, mergeOciBundle, OciBundleError, ociSysctlKeyValid, parseOciBundle } from './oci-bundle.js';
import { parseJsonLocated } from './json-located.js';

const B = '/srv/bundle';
const FILE = `${B}/config.json`;
const NS = [{ type: 'mount' }, { type: 'pid' }, { type: 'uts' }, { type: 'ipc' }];
const read = (o: Record<string, unknown>) => parseOciBundle(JSON.stringify({ ociVersion: '1.0.0', ...o }), B);
/** the refusal of O: its field and systemd's message */
const refusal = (o: Record<string, unknown> | string) => {
  try {
    if (typeof o === 'string') parseOciBundle(o, B);
    else read(o);
  } catch (e) {
    expect(e).toBeInstanceOf(OciBundleError);
    const err = e as OciBundleError;
    expect(err.message.split('\n')).toHaveLength(1);
    expect(err.message).toContain(FILE);
    expect(err.file).toBe(FILE);
    return { field: err.field, reason: err.reason, message: err.message };
  }
  throw new Error('not refused');
};

describe('the top level', () => {
  it('needs ociVersion 1.0.0, and gives the defaults systemd gives a bundle', () => {
    expect(read({}).settings).toEqual({ startMode: 'pid1', resolvConf: 'off', linkJournal: 'no', timezone: 'off', oci: { bundle: B } });
    expect(refusal({ ociVersion: '1.0.2' }).reason).toBe('OCI bundle version not supported: 1.0.2');
    expect(refusal('{"process":{}}').reason).toBe(`JSON file '${FILE}' is not an OCI bundle configuration file. Refusing.`);
  });

  it('refuses an unknown element, naming it, its type, the position and the field', () => {
    expect(refusal('{"ociVersion":"1.0.0",\n  "foo": 1}')).toEqual({
      field: 'foo',
      reason: "Unexpected OCI element 'foo' of type 'unsigned'.",
      message: `${FILE}:2:10: foo: Unexpected OCI element 'foo' of type 'unsigned'.`,
    });
    expect(refusal({ process: { foo: -1 } }).reason).toBe("Unexpected OCI element 'foo' of type 'integer'.");
    expect(refusal({ linux: { personality: {} } })).toMatchObject({ field: 'linux.personality', reason: "Unexpected OCI element 'personality' of type 'object'." });
  });

  it('refuses a field of the wrong type, a duplicate field, a missing mandatory one', () => {
    expect(refusal({ hostname: 5 })).toMatchObject({ field: 'hostname', reason: "Object field 'hostname' has wrong type unsigned, expected string." });
    expect(refusal('{"ociVersion":"1.0.0","hostname":"a","hostname":"b"}').reason).toBe("Duplicate object field 'hostname'.");
    expect(refusal({ process: { user: { uid: 1 } } })).toMatchObject({ field: 'process.user', reason: "Missing object field 'gid'." });
  });

  it('reports malformed JSON as systemd does, with the line and column', () => {
    expect(refusal('{"ociVersion": "1.0.0",\n "process": {,}}').message).toBe(`Failed to parse '${FILE}' at 2:14: Invalid argument`);
    expect(refusal('').message).toBe(`Failed to parse '${FILE}' at 1:1: Invalid argument`);
    expect(refusal('{"ociVersion":"1.0.0"} x').message).toBe(`Failed to parse '${FILE}' at 1:24: Invalid argument`);
  });

  it('reads the file through the given fs, and refuses a missing one', () => {
    const fs = { readFile: (p: string) => (p === FILE ? '{"ociVersion":"1.0.0","hostname":"h"}' : (() => { throw Object.assign(new Error('x'), { code: 'ENOENT' }); })()) };
    expect(loadOciBundle(B, fs).settings.hostname).toBe('h');
    expect(() => loadOciBundle('/nope', fs)).toThrow("Failed to parse '/nope/config.json': No such file or directory");
  });

  it('checks annotations (string values, no empty key) and ignores them', () => {
    expect(read({ annotations: { a: 'b' } }).settings.oci).toEqual({ bundle: B });
    expect(refusal({ annotations: { a: 1 } }).reason).toBe('Annotation has non-string value, refusing.');
    expect(refusal({ annotations: { '': 'x' } }).reason).toBe('Annotation with empty key, refusing.');
  });

  it('takes hooks only as 252 does: objects (empty), never run; the spec\'s arrays are refused', () => {
    expect(read({ hooks: { prestart: {} } }).settings.oci.hooks).toBeUndefined();
    expect(refusal({ hooks: { prestart: [{ path: '/bin/true' }] } }).reason).toBe("Object field 'prestart' has wrong type array, expected object.");
    expect(refusal({ hooks: { prestart: { path: '/bin/true' } } }).reason).toBe('JSON variant is not an object.');
  });
});

describe('process', () => {
  it('takes args, env, cwd, terminal', () => {
    const s = read({ process: { args: ['/bin/sh', '-c', 'x'], env: ['A=1', 'B=2'], cwd: '/tmp', terminal: false } }).settings;
    expect(s).toMatchObject({ parameters: ['/bin/sh', '-c', 'x'], environment: ['A=1', 'B=2'], workingDirectory: '/tmp', consoleMode: 'pipe' });
    expect(read({ process: { terminal: true } }).settings.consoleMode).toBeUndefined();
  });

  it('refuses empty or bad args, bad env entries, a relative cwd', () => {
    expect(refusal({ process: { args: [] } })).toMatchObject({ field: 'process.args', reason: 'Argument list empty, refusing.' });
    expect(refusal({ process: { args: [''] } }).reason).toBe('Executable name is empty, refusing.');
    expect(refusal({ process: { args: [1] } }).reason).toBe('Cannot parse arguments as list of strings: Invalid argument');
    expect(refusal({ process: { env: ['NOEQUALS'] } })).toMatchObject({ field: 'process.env[0]', reason: 'Environment assignment not valid: NOEQUALS' });
    expect(refusal({ process: { env: [1] } }).reason).toBe('Environment array contains non-string.');
    expect(refusal({ process: { cwd: 'tmp' } }).reason).toBe("Path in JSON field 'cwd' is not absolute: tmp");
  });

  it('takes the user as numbers, refusing invalid IDs', () => {
    expect(read({ process: { user: { uid: 1000, gid: 100, additionalGids: [5, 6] } } }).settings.oci).toMatchObject({ uid: 1000, gid: 100, supplementaryGids: [5, 6] });
    expect(refusal({ process: { user: { uid: 65535, gid: 0 } } }).reason).toBe('UID/GID is not valid: 65535');
    expect(refusal({ process: { user: { uid: 4294967296, gid: 0 } } }).reason).toBe('UID/GID out of range: 4294967296');
    expect(refusal({ process: { user: { uid: 0, gid: 0, additionalGids: ['x'] } } }).reason).toBe('Supplementary GID entry is not a UID.');
    expect(refusal({ process: { user: { uid: -1, gid: 0 } } }).reason).toBe("Object field 'uid' has wrong type integer, expected unsigned.");
  });

  it('takes rlimits (negative = infinity) and refuses bad ones', () => {
    const r = parseOciBundle(
      '{"ociVersion":"1.0.0","process":{"rlimits":[{"type":"RLIMIT_NOFILE","soft":10,"hard":20},{"type":"RLIMIT_CORE","soft":-1,"hard":18446744073709551615}]}}',
      B,
    );
    expect(r.settings.rlimits).toEqual({ NOFILE: { soft: 10n, hard: 20n }, CORE: { soft: 'infinity', hard: 'infinity' } });
    expect(refusal({ process: { rlimits: [{ type: 'NOFILE', soft: 1, hard: 1 }] } }).reason).toBe("rlimit entry's name does not begin with 'RLIMIT_', refusing: NOFILE");
    expect(refusal({ process: { rlimits: [{ type: 'RLIMIT_FOO', soft: 1, hard: 1 }] } })).toMatchObject({ field: 'process.rlimits[0].type', reason: 'rlimit name unknown: RLIMIT_FOO' });
    expect(refusal({ process: { rlimits: [{ type: 'RLIMIT_CPU', soft: 1.5, hard: 1 }] } }).reason).toBe('rlimits limit not unsigned, refusing.');
    expect(refusal({ process: { rlimits: [{ type: 'RLIMIT_CPU', soft: 1, hard: 1 }, { type: 'RLIMIT_CPU', soft: 1, hard: 1 }] } }).reason).toBe(
      'rlimits array contains duplicate entry, refusing.',
    );
    expect(refusal({ process: { rlimits: [{ type: 'RLIMIT_CPU', soft: 1 }] } }).reason).toBe("Missing object field 'hard'.");
  });

  it('takes the capability sets; bounding also becomes Capability=/DropCapability=', () => {
    const s = read({ process: { capabilities: { bounding: ['CAP_KILL', 'CAP_CHOWN'], effective: ['cap_kill'] } } }).settings;
    expect(s.oci.capabilities).toEqual({ bounding: ['CAP_CHOWN', 'CAP_KILL'], effective: ['CAP_KILL'] });
    expect(s.capability).toEqual(['CAP_CHOWN', 'CAP_KILL']);
    expect(s.dropCapability).toContain('CAP_SYS_ADMIN');
    expect(s.dropCapability).not.toContain('CAP_KILL');
    expect(read({ process: { capabilities: { effective: [] } } }).settings.capability).toBeUndefined();
    expect(refusal({ process: { capabilities: { bounding: ['CAP_NOPE'] } } }).reason).toBe('Unknown capability: CAP_NOPE');
    expect(refusal({ process: { capabilities: { bounding: [1] } } }).reason).toBe('Entry in capabilities array is not a string.');
  });

  it('takes oomScoreAdj in range; checks noNewPrivileges and takes nothing from it (as 252)', () => {
    expect(read({ process: { oomScoreAdj: -500 } }).settings.oomScoreAdjust).toBe(-500);
    expect(refusal({ process: { oomScoreAdj: 1001 } }).reason).toBe('oomScoreAdj value out of range: 1001');
    expect(read({ process: { noNewPrivileges: true } }).settings.noNewPrivileges).toBeUndefined();
    expect(refusal({ process: { noNewPrivileges: 1 } }).reason).toBe("Object field 'noNewPrivileges' has wrong type unsigned, expected boolean.");
  });

  it('takes the console size; refuses 0 and more than 65535', () => {
    expect(read({ process: { consoleSize: { height: 24, width: 80 } } }).settings.oci.consoleSize).toEqual({ width: 80, height: 24 });
    expect(refusal({ process: { consoleSize: { height: 0, width: 80 } } }).reason).toBe("Console size field 'height' is too small.");
    expect(refusal({ process: { consoleSize: { height: 1, width: 65536 } } }).reason).toBe("Console size field 'width' is too large.");
  });

  it('ignores apparmorProfile and selinuxLabel (permissive), whatever their type', () => {
    const r = read({ process: { apparmorProfile: 'x', selinuxLabel: 5 } });
    expect(r.settings.oci).toEqual({ bundle: B });
    expect(r.ignored).toEqual([expect.stringContaining("Unsupported OCI element 'apparmorProfile' of type 'string'.")]);
  });
});

describe('root, hostname, mounts', () => {
  it('takes root.path relative to the bundle; readonly has no effect (as 252)', () => {
    expect(read({ root: { path: 'rootfs' } }).settings.directory).toBe(`${B}/rootfs`);
    expect(read({ root: { path: '/abs/dir/' } }).settings.directory).toBe('/abs/dir');
    expect(read({ root: { path: 'r', readonly: true } }).settings.readOnly).toBeUndefined();
  });

  it('takes a valid hostname', () => {
    expect(read({ hostname: 'web-1' }).settings.hostname).toBe('web-1');
    expect(refusal({ hostname: 'a b' }).reason).toBe('Hostname string is not a valid hostname: a b');
  });

  it('makes bind mounts (relative sources in the bundle), arbitrary mounts, and skips the API file systems', () => {
    const s = read({
      mounts: [
        { destination: '/data', source: 'd', options: ['rbind', 'ro'] },
        { destination: '/x', type: 'bind', source: '/abs', options: ['norbind'] },
        { destination: '/m', type: 'tmpfs', source: 'tmpfs', options: ['size=1m', 'mode=700'] },
        { destination: '/proc', type: 'proc', source: 'proc' },
        { destination: '/sys/fs/cgroup/x', type: 'cgroup' },
        { destination: '/dev/pts', type: 'devpts' },
      ],
    }).settings;
    expect(s.customMounts).toEqual([
      { type: 'bind', source: `${B}/d`, destination: '/data', readOnly: false, recursive: true, options: 'rbind,ro' },
      { type: 'bind', source: '/abs', destination: '/x', readOnly: false, recursive: false, options: 'norbind' },
      { type: 'arbitrary', source: 'tmpfs', destination: '/m', fstype: 'tmpfs', options: 'size=1m,mode=700' },
    ]);
    expect(refusal({ mounts: [{ destination: 'rel' }] }).reason).toBe("Path in JSON field 'destination' is not absolute: rel");
    expect(refusal({ mounts: [{ source: '/x' }] }).reason).toBe("Missing object field 'destination'.");
  });

  it('masks maskedPaths (gracefully) and binds readonlyPaths read-only from the tree, in file order with the mounts', () => {
    const s = read({ linux: { namespaces: NS, readonlyPaths: ['/usr', '/proc/sys'], maskedPaths: ['/etc/shadow', '/proc/kcore'] }, mounts: [{ destination: '/a', source: '/b' }] }).settings;
    expect(s.customMounts).toEqual([
      { type: 'bind', source: '/usr', sourceInRoot: true, destination: '/usr', readOnly: true, recursive: true },
      { type: 'inaccessible', destination: '/etc/shadow', graceful: true },
      { type: 'bind', source: '/b', destination: '/a', readOnly: false, recursive: true },
    ]);
    expect(refusal({ linux: { maskedPaths: ['rel'] } }).reason).toBe('Path is not absolute, refusing: rel');
    expect(refusal({ linux: { readonlyPaths: [1] } }).reason).toBe('Path is not a string, refusing.');
  });
});

describe('linux', () => {
  it('takes the namespaces: network, user, cgroup, and which of ipc/pid/uts', () => {
    const s = read({ linux: { namespaces: [{ type: 'mount' }, { type: 'network' }, { type: 'cgroup' }, { type: 'pid' }] } }).settings;
    expect(s).toMatchObject({ privateNetwork: true, useCgns: true, privateUsers: { mode: 'no' } });
    expect(s.oci.namespaces).toEqual(['pid']);
    expect(read({ linux: { namespaces: [{ type: 'mount' }, { type: 'network', path: '/run/netns/x' }] } }).settings.networkNamespacePath).toBe('/run/netns/x');
  });

  it('refuses what 252 refuses in the namespaces', () => {
    expect(refusal({ linux: { namespaces: [{ type: 'pid' }] } }).reason).toBe("Containers without a mount namespace aren't supported.");
    expect(refusal({ linux: { namespaces: [{ type: 'mount' }, { type: 'time' }] } }).reason).toBe('Unknown namespace type, refusing: time');
    expect(refusal({ linux: { namespaces: [{ type: 'mount' }, { type: 'mount' }] } }).reason).toBe('Duplicate namespace specification, refusing.');
    expect(refusal({ linux: { namespaces: [{ type: 'mount', path: '/proc/1/ns/mnt' }] } }).reason).toBe('Specifying namespace path for non-network namespace is not supported.');
    expect(refusal({ linux: { namespaces: [{ type: 'mount' }, { type: 'network', path: 'x' }] } }).reason).toBe("Path in JSON field 'path' is not absolute: x");
  });

  it('takes one UID/GID mapping from container ID 0, the same for both, in either order with the namespaces', () => {
    const map = [{ containerID: 0, hostID: 100000, size: 65536 }];
    expect(read({ linux: { namespaces: [...NS, { type: 'user' }], uidMappings: map, gidMappings: map } }).settings.privateUsers).toEqual({ mode: 'fixed', shift: 100000, range: 65536 });
    expect(read({ linux: { uidMappings: map, namespaces: [...NS, { type: 'user' }] } }).settings.privateUsers).toEqual({ mode: 'fixed', shift: 100000, range: 65536 });
    expect(read({ linux: { namespaces: [...NS, { type: 'user' }] } }).settings.privateUsers).toEqual({ mode: 'fixed' });
    expect(refusal({ linux: { uidMappings: [...map, ...map] } }).reason).toBe('UID/GID mappings with more than one entry are not supported.');
    expect(refusal({ linux: { uidMappings: [{ containerID: 1, hostID: 100000, size: 65536 }] } }).reason).toBe('UID/GID mappings with a non-zero container base are not supported.');
    expect(refusal({ linux: { uidMappings: map, gidMappings: [{ containerID: 0, hostID: 200000, size: 65536 }] } }).reason).toBe('Non-matching UID and GID mappings are not supported.');
    expect(refusal({ linux: { uidMappings: [{ containerID: 0, hostID: 4294967000, size: 65536 }] } }).reason).toBe('UID/GID range goes beyond UID/GID validity range, refusing.');
    expect(refusal({ linux: { uidMappings: [{ containerID: 0, hostID: 1, size: 0 }] } }).reason).toBe("UID/GID range can't be zero.");
  });

  it('takes device nodes (type and fileMode in either order), skipping the implicit ones', () => {
    const s = read({
      linux: {
        devices: [
          { type: 'c', path: '/dev/a', major: 1, minor: 11, fileMode: 0o600, uid: 5 },
          { fileMode: 0o640, type: 'b', path: '/dev/b', major: 7, minor: 0 },
          { type: 'p', path: '/dev/p' },
          { type: 'c', path: '/dev/null', major: 1, minor: 3 },
        ],
      },
    });
    expect(s.settings.oci.devices).toEqual([
      { path: '/dev/a', mode: 0o020600, major: 1, minor: 11, uid: 5 },
      { path: '/dev/b', mode: 0o060640, major: 7, minor: 0 },
      { path: '/dev/p', mode: 0o010644 },
    ]);
    expect(s.ignored).toHaveLength(1);
    expect(refusal({ linux: { devices: [{ type: 'x', path: '/dev/x' }] } }).reason).toBe('Unknown device type: x');
    expect(refusal({ linux: { devices: [{ type: 'c', path: '/dev/x' }] } }).reason).toBe('Major/minor required when device node is device node');
    expect(refusal({ linux: { devices: [{ type: 'c', path: '/dev/x', major: 4096, minor: 0 }] } }).reason).toBe('Device major 4096 out of range.');
    expect(refusal({ linux: { devices: [{ type: 'c', path: '/dev/x', major: 1, minor: 1, fileMode: 0o10000 }] } }).reason).toBe('fileMode out of range, refusing.');
  });

  it('takes a cgroupsPath that names a slice (relative, as 252 compares it)', () => {
    expect(read({ linux: { cgroupsPath: 'foo.slice/foo-bar.slice' } }).settings.slice).toBe('foo-bar.slice');
    expect(refusal({ linux: { cgroupsPath: '/machine.slice/x' } }).reason).toBe("Control group path '/machine.slice/x' does not refer to slice unit, refusing.");
    expect(refusal({ linux: { cgroupsPath: 'foo--bar.slice' } }).reason).toBe("Couldn't convert slice unit name 'foo--bar.slice' back to path: Invalid argument");
  });

  it('turns resources into the scope\'s properties, and the CPU set into the affinity', () => {
    const s = read({
      linux: {
        resources: {
          memory: { limit: 1048576, reservation: 4096, swap: 2097152, kernel: 1 },
          cpu: { shares: 512, quota: 50000, period: 100000, cpus: '0-1' },
          pids: { limit: 100 },
          blockIO: { weight: 100, weightDevice: [{ major: 8, minor: 0, weight: 200 }], throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 1000 }] },
          devices: [{ allow: false, access: 'rwm' }, { allow: true, type: 'c', major: 1, minor: 3, access: 'rw' }, { allow: true, type: 'b', access: 'r' }],
        },
      },
    }).settings;
    expect(s.cpuAffinity).toEqual([0, 1]);
    expect(s.oci.properties).toEqual([
      'MemorySwapMax=1048576', 'MemoryMax=1048576', 'MemoryLow=4096', 'CPUShares=512', 'CPUQuota=50.00%', 'TasksMax=100',
      'BlockIOWeight=100', 'BlockIODeviceWeight=/dev/block/8:0 200', 'IOReadBandwidthMax=/dev/block/8:0 1000',
      'DeviceAllow=/dev/char/1:3 rw', 'DeviceAllow=block-* r',
    ]);
    expect(read({ linux: { resources: { devices: [{ allow: true, access: 'rwm' }] } } }).settings.oci.properties).toBeUndefined();
  });

  it('refuses what 252 refuses in the resources', () => {
    expect(refusal({ linux: { resources: { hugepageLimits: [] } } })).toMatchObject({ field: 'linux.resources.hugepageLimits', reason: "Unsupported OCI element 'hugepageLimits' of type 'array'." });
    expect(refusal({ linux: { resources: { network: {} } } }).reason).toBe("Unsupported OCI element 'network' of type 'object'.");
    expect(refusal({ linux: { resources: { rdma: {} } } }).reason).toBe("Unsupported OCI element 'rdma' of type 'object'.");
    expect(refusal({ linux: { resources: { cpu: { mems: '0' } } } }).reason).toBe("Unsupported OCI element 'mems' of type 'string'.");
    expect(refusal({ linux: { resources: { cpu: { realtimeRuntime: 1 } } } }).reason).toBe("Unsupported OCI element 'realtimeRuntime' of type 'unsigned'.");
    expect(refusal({ linux: { resources: { cpu: { quota: 1 } } } }).reason).toBe('CPU quota and period not used together.');
    expect(refusal({ linux: { resources: { cpu: { shares: 1 } } } }).reason).toBe('shares value out of range.');
    expect(refusal({ linux: { resources: { blockIO: { weight: 1 } } } }).reason).toBe('Block I/O weight out of range.');
    expect(refusal({ linux: { resources: { devices: [{ allow: true, minor: 3, access: 'r' }] } } }).reason).toBe('Device cgroup allow list entries with minors but no majors not supported.');
    expect(refusal({ linux: { resources: { devices: [{ allow: true, major: 1, access: 'r' }] } } }).reason).toBe('Device cgroup allow list entries with majors but no device node type not supported.');
    expect(refusal({ linux: { resources: { devices: [{ allow: true, access: 'r' }] } } }).reason).toBe('Device cgroup allow list entries with no type not supported.');
    expect(refusal({ linux: { resources: { devices: [{ allow: true, type: 'c', access: 'x' }] } } }).reason).toBe("Unknown device access character 'x'.");
    expect(refusal({ linux: { resources: { pids: { limit: 1.5 } } } }).reason).toBe('pids limit not unsigned integer, refusing.');
    expect(refusal({ linux: { resources: { memory: { limit: 1.5 } } } }).reason).toBe('Memory limit is not an unsigned integer');
  });

  it('ignores intelRdt, mountLabel and the dead memory knobs (permissive); refuses an unknown one', () => {
    expect(read({ linux: { intelRdt: {}, mountLabel: 'x', resources: { memory: { swapiness: 1, disableOOMKiller: 1 } } } }).ignored).toHaveLength(4);
    expect(refusal({ linux: { resources: { memory: { swappiness: 1 } } } }).reason).toBe("Unexpected OCI element 'swappiness' of type 'unsigned'.");
  });

  it('checks sysctl (valid keys, string values) and seccomp (actions, architectures, operators)', () => {
    expect(ociSysctlKeyValid('net.ipv4.ip_forward')).toBe(true);
    expect(ociSysctlKeyValid('a..b') || ociSysctlKeyValid('.a') || ociSysctlKeyValid('a.') || ociSysctlKeyValid('a/b')).toBe(false);
    expect(read({ linux: { sysctl: { 'kernel.domainname': 'x' } } }).settings.oci.sysctl).toEqual([['kernel.domainname', 'x']]);
    expect(refusal({ linux: { sysctl: { 'a..b': 'x' } } }).reason).toBe('sysctl key invalid, refusing: a..b');
    expect(refusal({ linux: { sysctl: { a: 1 } } }).reason).toBe('sysctl parameter is not a string, refusing.');
    const sc = { defaultAction: 'SCMP_ACT_ERRNO', architectures: ['SCMP_ARCH_X86_64'], syscalls: [{ names: ['kill'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 1, op: 'SCMP_CMP_EQ' }] }] };
    expect(read({ linux: { seccomp: sc } }).settings.oci.seccomp).toEqual({
      defaultAction: 'SCMP_ACT_ERRNO',
      architectures: ['SCMP_ARCH_X86_64'],
      syscalls: [{ names: ['kill'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 1n, valueTwo: 0n, op: 'SCMP_CMP_EQ' }] }],
    });
    expect(refusal({ linux: { seccomp: {} } }).reason).toBe('defaultAction element missing.');
    expect(refusal({ linux: { seccomp: { defaultAction: 'SCMP_ACT_TRACE' } } }).reason).toBe('Unknown default action: SCMP_ACT_TRACE');
    expect(refusal({ linux: { seccomp: { ...sc, architectures: ['SCMP_ARCH_VAX'] } } }).reason).toBe('Unknown architecture: SCMP_ARCH_VAX');
    expect(refusal({ linux: { seccomp: { ...sc, syscalls: [{ names: [], action: 'SCMP_ACT_ALLOW' }] } } }).reason).toBe('System call name list is empty.');
    expect(refusal({ linux: { seccomp: { ...sc, syscalls: [{ names: ['x'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 1, op: 'LIKE' }] }] } } }).reason).toBe(
      "Unknown seccomp operator 'LIKE': Invalid argument",
    );
  });

  it('accepts rootfsPropagation of any value (ignored)', () => {
    expect(read({ linux: { rootfsPropagation: 'private' } }).ignored).toEqual([expect.stringContaining("Ignoring rootfsPropagation setting 'private'.")]);
  });
});

describe('mergeOciBundle()', () => {
  const bundle = read({
    root: { path: 'rootfs' },
    hostname: 'oci',
    process: { args: ['/bin/oci'], env: ['A=1'], user: { uid: 5, gid: 5 }, capabilities: { bounding: ['CAP_KILL'] }, terminal: false },
    linux: { namespaces: [...NS, { type: 'cgroup' }], cgroupsPath: 'x.slice', resources: { pids: { limit: 10 } }, devices: [{ type: 'p', path: '/dev/p' }] },
  });

  it('takes the bundle where the command line set nothing', () => {
    const cl = parseCommandLine(['--oci-bundle=/srv/bundle']);
    const out = mergeOciBundle(cl, bundle).settings;
    expect(out).toMatchObject({ directory: `${B}/rootfs`, hostname: 'oci', parameters: ['/bin/oci'], environment: ['A=1'], consoleMode: 'pipe', slice: 'x.slice', useCgns: true, properties: ['TasksMax=10'] });
    expect(out.oci).toMatchObject({ uid: 5, gid: 5, capabilities: { bounding: ['CAP_KILL'] }, namespaces: ['ipc', 'pid', 'uts'], devices: [{ path: '/dev/p', mode: 0o010644 }] });
    expect(out.ociBundle).toBe(B);
  });

  it('keeps what the command line set: -D, -u, the command, --hostname, --console, --slice, capabilities', () => {
    const cl = parseCommandLine(['--oci-bundle=/srv/bundle', '-D', '/other', '-u', 'nobody', '--hostname=cli', '--console=read-only', '--slice=s.slice', '--capability=CAP_CHOWN', '/bin/cli']);
    const out = mergeOciBundle(cl, bundle).settings;
    expect(out).toMatchObject({ directory: '/other', user: 'nobody', hostname: 'cli', parameters: ['/bin/cli'], consoleMode: 'read-only', slice: 's.slice' });
    expect(out.oci?.uid).toBeUndefined();
    expect(out.oci?.capabilities).toBeUndefined();
    // what systemd always takes from a bundle
    expect(out.oci?.devices).toHaveLength(1);
    expect(out.properties).toEqual(['TasksMax=10']);
  });

  it('--settings=override lets the bundle win; --settings=no takes only what systemd always takes', () => {
    expect(mergeOciBundle(parseCommandLine(['--oci-bundle=/b', '--settings=override', '--hostname=cli']), bundle).settings.hostname).toBe('oci');
    const no = mergeOciBundle(parseCommandLine(['--oci-bundle=/b', '--settings=no']), bundle).settings;
    expect(no.hostname).toBeUndefined();
    expect(no.directory).toBeUndefined();
    expect(no.oci).toEqual({ bundle: B, properties: ['TasksMax=10'], devices: [{ path: '/dev/p', mode: 0o010644 }] });
  });
});

describe('mergeOciBundle(): the namespaces against --share-system and $SYSTEMD_NSPAWN_SHARE_*', () => {
  const lacking = read({ root: { path: 'rootfs' }, linux: { namespaces: [{ type: 'mount' }, { type: 'ipc' }] } });
  const none = read({ root: { path: 'rootfs' } });
  const merged = (b: typeof none, argv: string[], environ: Record<string, string> = {}) => {
    const s = mergeOciBundle(parseCommandLine(['--oci-bundle=/b', ...argv], { environ, warn: () => {} }), b).settings;
    return { shared: s.sharedNamespaces, namespaces: s.oci?.namespaces };
  };
  it('the bundle\'s linux.namespaces replace --share-system\'s (252 does not key it)', () => {
    expect(merged(lacking, ['--share-system'])).toEqual({ shared: undefined, namespaces: ['ipc'] });
    // a bundle without linux.namespaces leaves --share-system's in place
    expect(merged(none, ['--share-system'])).toEqual({ shared: ['ipc', 'pid', 'uts'], namespaces: undefined });
  });
  it('a variable keeps them out (even one that shares nothing), unless --settings=override', () => {
    expect(merged(lacking, [], { SYSTEMD_NSPAWN_SHARE_NS_UTS: '1' })).toEqual({ shared: ['uts'], namespaces: undefined });
    expect(merged(lacking, [], { SYSTEMD_NSPAWN_SHARE_NS_UTS: '0' })).toEqual({ shared: undefined, namespaces: undefined });
    expect(merged(lacking, ['--settings=override'], { SYSTEMD_NSPAWN_SHARE_NS_UTS: '1' })).toEqual({ shared: undefined, namespaces: ['ipc'] });
    expect(merged(lacking, ['--settings=no', '--share-system'])).toEqual({ shared: ['ipc', 'pid', 'uts'], namespaces: undefined });
  });
});

describe('parseJsonLocated()', () => {
  it('keeps positions, key order, duplicates and the kind of each number', () => {
    const v = parseJsonLocated('{\n "b": -1, "a": 18446744073709551615, "a": 1e3, "c": 18446744073709551616}');
    expect(v.type).toBe('object');
    if (v.type !== 'object') return;
    expect(v.entries.map(([k, n]) => [k, n.type, n.line, n.column])).toEqual([
      ['b', 'integer', 2, 7],
      ['a', 'unsigned', 2, 16],
      ['a', 'real', 2, 43],
      ['c', 'real', 2, 53],
    ]);
  });
});
