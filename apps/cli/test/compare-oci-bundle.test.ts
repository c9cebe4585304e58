/**
 * --oci-bundle=PATH side by side with systemd-nspawn 252 (nspawn-oci.c's oci_load(), merged by merge_settings()): the
 * same bundle (a busybox rootfs, a config.json) under both tools, in fresh copies; what the container sees must match
 * (args, env, cwd, UID/GID and groups, hostname, mounts, capabilities, rlimits, no_new_privs, oom_score_adj, device
 * nodes, the exit status), the command line must win over the bundle alike, and both must refuse the same configs,
 * leaving nothing behind. Known differences are asserted to still exist (see the settings README).
 *
 * Needs root and /usr/bin/systemd-nspawn; it fails, never skips, without them.
 */
import { cpSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runTool, type Tool, TOOL_ENV, toolCommand, TOOLS } from './helpers/containers.js';
import { OciBundleRuns, type Seen } from './helpers/oci-bundle.js';
import { PtySession } from './helpers/pty.js';

/** root.path's name: the machine's name under both tools (unique to this test) */
const ROOT = 'nt-ocib-root';
const NS = [{ type: 'mount' }, { type: 'pid' }, { type: 'uts' }, { type: 'ipc' }, { type: 'cgroup' }];

const PROBE = [
  'echo "id: $(id)"',
  'echo "pwd: $(pwd)"',
  'env | sort | grep -v -e ^container_uuid= -e ^SHLVL= -e ^_= | sed "s/^/env: /"',
  'echo "hostname: $(hostname)"',
  'grep -E "^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Groups):" /proc/self/status | tr "\\t" " " | sed "s/^/status: /"',
  'echo "oom: $(cat /proc/self/oom_score_adj)"',
  'echo "rlimit nofile: $(ulimit -Sn) $(ulimit -Hn)"',
  'echo "rlimit core: $(ulimit -Sc) $(ulimit -Hc)"',
  // mount point, options, fs type and source of the mounts a bundle can make (the tree's path made generic)
  'grep -E " /(data|scratch|usr|mnt/ro) " /proc/self/mountinfo | sed -E "s/^[0-9]+ [0-9]+ [0-9:]+ //; s/ (shared|master|propagate_from):[0-9]+//g" | sed "s/^/mount: /"',
  'for f in /data/file /usr/marker; do echo "read $f: $(cat $f 2>&1)"; done',
  'echo "write /usr: $( (echo x > /usr/x) 2>&1 && echo ok)"',
  'ls -ln /dev/oci-char /dev/oci-fifo 2>&1 | sed -E "s/ +[A-Z][a-z]{2} +[0-9]+ +[0-9:]+ / DATE /; s/^/dev: /"',
  'echo "uid_map: $(awk \'{print $1, $2, $3}\' /proc/self/uid_map)"',
  'echo "links: $(ls /sys/class/net | tr "\\n" " ")"',
].join('\n');

const runs = new OciBundleRuns(ROOT, 'nt-ocib-');
beforeAll(() => {
  runs.start();
  writeFileSync(join(runs.template, 'usr/marker'), 'in the tree\n');
  writeFileSync(join(runs.template, 'etc/group'), 'root:x:0:\ntty:x:5:\nusers:x:100:\n');
  mkdirSync(join(runs.template, 'mnt/ro'), { recursive: true });
});
afterAll(() => {
  expect(runs.finish()).toEqual([]);
});

const bundle = (o: Record<string, unknown> = {}, process: Record<string, unknown> = {}, linux: Record<string, unknown> = {}) => ({
  ociVersion: '1.0.0',
  root: { path: ROOT },
  ...o,
  process: { args: ['/bin/sh', '-c', PROBE], ...process },
  linux: { namespaces: NS, ...linux },
});

describe('--oci-bundle= as systemd-nspawn 252', () => {
  it('the process: args, env, cwd, user and groups, hostname, capabilities, rlimits, oomScoreAdj, exit status', async () => {
    const config = bundle(
      { hostname: 'oci-host' },
      {
        args: ['/bin/sh', '-c', `${PROBE}\nexit 7`],
        env: ['FOO=bar', 'PATH=/bin:/usr/bin'],
        cwd: '/tmp',
        user: { uid: 1000, gid: 100, additionalGids: [5, 6] },
        terminal: false,
        rlimits: [{ type: 'RLIMIT_NOFILE', soft: 123, hard: 456 }, { type: 'RLIMIT_CORE', soft: -1, hard: -1 }],
        capabilities: { bounding: ['CAP_KILL', 'CAP_CHOWN', 'CAP_NET_RAW'], effective: ['CAP_KILL'], permitted: ['CAP_KILL'], inheritable: ['CAP_KILL'], ambient: ['CAP_KILL'] },
        oomScoreAdj: 250,
        // read, checked and without effect in 252 (a bool stored into an int tristate)
        noNewPrivileges: true,
      },
    );
    const seen = await runs.both(config);
    expect(seen.nspawn.stderr, 'nspawn stderr').toEqual(seen['systemd-nspawn'].stderr);
    expect(seen.nspawn.lines).toEqual(seen['systemd-nspawn'].lines);
    expect(seen.nspawn.status).toBe(7);
    expect(seen['systemd-nspawn'].status).toBe(7);
    // what they agree on is what the bundle says (the comparison can fail)
    expect(seen.nspawn.lines).toEqual(
      expect.arrayContaining([
        'id: uid=1000 gid=100(users) groups=5(tty),6',
        'pwd: /tmp',
        'env: FOO=bar',
        'env: PATH=/bin:/usr/bin',
        'hostname: oci-host',
        'status: CapBnd: 0000000000002021',
        'status: CapAmb: 0000000000000020',
        'status: NoNewPrivs: 0',
        'oom: 250',
        'rlimit nofile: 123 456',
        'rlimit core: unlimited unlimited',
      ]),
    );
    expect(seen.nspawn.lines.some((l) => l.startsWith('env: HOME=') || l.startsWith('env: USER='))).toBe(false);
  });

  it('root without a user, capabilities or terminal: HOME and USER, the default capabilities', async () => {
    const seen = await runs.both(bundle({}, { env: ['A=1'] }));
    expect(seen.nspawn).toEqual(seen['systemd-nspawn']);
    expect(seen.nspawn.status).toBe(0);
    expect(seen.nspawn.lines).toEqual(expect.arrayContaining(['id: uid=0(root) gid=0(root)', 'env: HOME=/root', 'env: USER=root', `hostname: ${ROOT}`]));
  });

  it('mounts (bind from the bundle, tmpfs), readonlyPaths, device nodes; the API file systems stay nspawn\'s', async () => {
    const config = bundle(
      {
        mounts: [
          { destination: '/data', source: 'hostdir' },
          { destination: '/scratch', type: 'tmpfs', source: 'tmpfs', options: ['size=1m', 'mode=0700'] },
          { destination: '/proc', type: 'proc', source: 'proc' },
          { destination: '/dev', type: 'tmpfs', source: 'tmpfs' },
        ],
      },
      {},
      {
        readonlyPaths: ['/usr', '/proc/sys'],
        devices: [
          { type: 'c', path: '/dev/oci-char', major: 1, minor: 11, fileMode: 0o640, uid: 0, gid: 5 },
          { fileMode: 0o600, type: 'p', path: '/dev/oci-fifo' },
          { type: 'c', path: '/dev/null', major: 1, minor: 3 },
        ],
      },
    );
    const seen = await runs.both(config);
    expect(seen.nspawn).toEqual(seen['systemd-nspawn']);
    expect(seen.nspawn.lines).toEqual(
      expect.arrayContaining(['read /data/file: from the host', 'read /usr/marker: in the tree', "write /usr: /bin/sh: can't create /usr/x: Read-only file system"]),
    );
    expect(seen.nspawn.lines.filter((l) => l.startsWith('mount: '))).toHaveLength(3);
    expect(seen.nspawn.lines.find((l) => l.includes(' /scratch '))).toMatch(/ - tmpfs tmpfs rw,size=1024k,mode=700$/);
    expect(seen.nspawn.lines).toEqual(expect.arrayContaining([expect.stringMatching(/^dev: crw-r----- +1 0 +5 +1, +11 DATE \/dev\/oci-char$/), expect.stringMatching(/^dev: prw------- /)]));
  });

  it('maskedPaths: a known difference on a host without /run/systemd/inaccessible (252 masks nothing there)', async () => {
    const hostHasInaccessibleNodes = existsSync('/run/systemd/inaccessible/reg');
    const seen = await runs.both(bundle({}, { args: ['/bin/sh', '-c', 'cat /usr/marker; echo rc=$?; ls /nonexistent 2>&1; true'] }, { maskedPaths: ['/usr/marker', '/nonexistent'] }));
    expect(seen.nspawn.status).toBe(0);
    expect(seen['systemd-nspawn'].status).toBe(0);
    // both skip a path that does not exist
    expect(seen.nspawn.lines.at(-1)).toBe(seen['systemd-nspawn'].lines.at(-1));
    expect(seen.nspawn.lines.slice(0, 1)).toEqual(['rc=0']); // masked: an empty file (root may read a 0000 file)
    expect(seen['systemd-nspawn'].lines.slice(0, 2)).toEqual(hostHasInaccessibleNodes ? ['rc=0'] : ['in the tree', 'rc=0']);
  });

  it('linux.resources: the scope\'s properties; a known difference on a host without a system bus', async () => {
    const hostHasSystemBus = existsSync('/run/dbus/system_bus_socket');
    const config = bundle({}, { args: ['/bin/sh', '-c', 'cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max'] }, {
      resources: { pids: { limit: 100 }, memory: { limit: 104857600 } },
    });
    const seen = await runs.both(config);
    // 252 keeps the properties in a bus message made on the system bus: without one it fails, silently
    if (!hostHasSystemBus) expect(seen['systemd-nspawn']).toMatchObject({ status: 1, lines: [], stderr: [] });
    else expect(seen['systemd-nspawn'].status).toBe(0);
    // nspawn makes the scope itself here and gives it the properties (systemd's scope would have them with machined)
    expect(seen.nspawn.status).toBe(0);
    expect(seen.nspawn.lines).toEqual(['100']);
  });

  it('process.consoleSize: the pty gets it instead of the terminal\'s size', async () => {
    const sizes = {} as Record<Tool, string>;
    for (const tool of TOOLS) {
      // under heavy load the payload's stty sometimes finds its terminal not ready yet ("stty: standard input"), under
      // either tool: such a run is tried again (at most three times); a wrong size is never retried
      for (let attempt = 1; attempt <= 3; attempt++) {
        const b = runs.makeBundle(tool, bundle({}, { args: ['/bin/sh', '-c', 'echo "size: $(stty size 2>&1)"'], consoleSize: { height: 30, width: 100 } }));
        const bin = toolCommand(tool).flat().map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
        const pty = new PtySession(`stty rows 50 cols 160; ${bin} -q --register=no --keep-unit --oci-bundle=${b}`, { env: TOOL_ENV });
        sizes[tool] = (await pty.expect(/size: (.*)\n/, `${tool}'s stty size`, 30000))[1]!;
        expect(await pty.wait(`${tool} to end`, 30000)).toBe(0);
        expect(runs.leftovers(b)).toEqual([]);
        if (!sizes[tool].startsWith('stty:')) break;
      }
    }
    expect(sizes).toEqual({ 'systemd-nspawn': '30 100', nspawn: '30 100' });
  });

  it('a user namespace from the mappings, a network namespace of its own', async () => {
    const map = [{ containerID: 0, hostID: 1879048192, size: 65536 }];
    const config = bundle({}, { args: ['/bin/sh', '-c', `${PROBE}\nexit 0`] }, {
      namespaces: [...NS, { type: 'network' }, { type: 'user' }],
      uidMappings: map,
      gidMappings: map,
    });
    const seen = await runs.both(config);
    expect(seen.nspawn.lines).toEqual(seen['systemd-nspawn'].lines);
    expect(seen.nspawn.status).toBe(0);
    expect(seen.nspawn.lines).toEqual(expect.arrayContaining(['uid_map: 0 1879048192 65536', 'links: lo ']));
  });

  it('the command line wins: -D over root.path, the command over process.args, --hostname, -u', async () => {
    const other = join(runs.dir, 'other-tree');
    cpSync(runs.template, other, { recursive: true, verbatimSymlinks: true });
    writeFileSync(join(other, 'usr/marker'), 'the -D tree\n');
    try {
      const config = bundle({ hostname: 'oci-host' }, { user: { uid: 1000, gid: 100 }, args: ['/bin/false'] });
      const seen = await runs.both(config, ['-D', other, '--hostname=cli-host', '-u', 'root', '/bin/sh', '-c', PROBE]);
      expect(seen.nspawn).toEqual(seen['systemd-nspawn']);
      expect(seen.nspawn.lines).toEqual(expect.arrayContaining(['read /usr/marker: the -D tree', 'hostname: cli-host', 'id: uid=0(root) gid=0(root)']));
    } finally {
      expect(runs.leftovers(other)).toEqual([]);
    }
  });

  describe('both refuse the same configs, and leave nothing behind', () => {
    const refused: Array<[string, object | string]> = [
      ['an unknown element', { ...bundle(), foo: 1 }],
      ['an unsupported resource', bundle({}, {}, { resources: { hugepageLimits: [] } })],
      ['a bad version', { ...bundle(), ociVersion: '2.0.0' }],
      ['malformed JSON', '{"ociVersion": "1.0.0", "process": {,}}'],
      ['no mount namespace', bundle({}, {}, { namespaces: [{ type: 'pid' }] })],
      ['an unknown capability', bundle({}, { capabilities: { bounding: ['CAP_NOPE'] } })],
      ['a relative cwd', bundle({}, { cwd: 'tmp' })],
      ['hooks as the spec writes them (arrays)', bundle({ hooks: { prestart: [{ path: '/bin/true' }] } })],
      ['a cgroupsPath that is no slice', bundle({}, {}, { cgroupsPath: '/machine.slice/foo' })],
    ];
    for (const [what, config] of refused)
      it(what, async () => {
        const seen = await runs.both(config);
        expect(seen['systemd-nspawn'].status).toBe(1);
        expect(seen.nspawn.status).toBe(1);
        // 252 logs these only at debug level; we say what and where in one line
        // 252 logs most of these only at debug level; what it prints, we print too, and we always say what and where in
        // one line
        const theirs = seen['systemd-nspawn'].stderr;
        expect(theirs.length).toBeLessThanOrEqual(1);
        expect(seen.nspawn.stderr).toEqual([expect.stringMatching(/BUNDLE\/config\.json/)]);
        if (theirs.length) expect(seen.nspawn.stderr[0]).toContain(theirs[0]!.replace(/^.*config\.json:\d+:\d+: /, ''));
      });

    it('a missing config.json', async () => {
      const seen = {} as Record<Tool, Seen>;
      for (const tool of TOOLS) {
        const r = await runTool(tool, ['-q', `--oci-bundle=${join(runs.dir, 'no-such-bundle')}`], { env: TOOL_ENV });
        seen[tool] = { status: r.status, lines: [], stderr: r.stderr.split('\n').filter((l) => l !== '').map((l) => l.split(runs.dir).join('TMP')) };
      }
      expect(seen.nspawn).toEqual(seen['systemd-nspawn']);
      expect(seen.nspawn.stderr).toEqual(["Failed to parse 'TMP/no-such-bundle/config.json': No such file or directory"]);
    });

    it('failures when starting: a bind mount option 252 does not take, capabilities capset() refuses', async () => {
      for (const config of [
        bundle({ mounts: [{ destination: '/data', source: 'hostdir', options: ['rbind', 'ro'] }] }),
        bundle({}, { user: { uid: 1000, gid: 1000 }, capabilities: { effective: ['CAP_KILL'] } }),
      ]) {
        const seen = await runs.both(config);
        expect(seen.nspawn.status).toBe(1);
        expect(seen['systemd-nspawn'].status).toBe(1);
        expect(seen.nspawn.stderr[0]).toBe(seen['systemd-nspawn'].stderr[0]);
      }
    });
  });
});
