import { describe, expect, it } from 'vitest';
import { parseCommandLine } from './cli-args.js';
import { bindMountOptionsError } from './mounts.js';
import { SettingsError } from './model.js';

const env = { cwd: '/work', environ: { HOME: '/root', FROMHOST: 'yes' } };
const parse = (...argv: string[]) => parseCommandLine(argv, env);

describe('parseCommandLine', () => {
  it('options stop at the first non-option (getopt "+")', () => {
    const cl = parse('-D', 'tree', '/bin/sh', '-c', 'echo -D');
    expect(cl.settings.directory).toBe('/work/tree');
    expect(cl.settings.parameters).toEqual(['/bin/sh', '-c', 'echo -D']);
    expect(cl.set.has('start-mode')).toBe(true);
  });
  it('-- ends the options', () => {
    expect(parse('-D', '/t', '--', '-b').settings.parameters).toEqual(['-b']);
  });
  it('short options combine and take attached or separate values', () => {
    const cl = parse('-aqD/t', '-Mfoo', '-u', 'al');
    expect(cl.settings).toMatchObject({ startMode: 'pid2', quiet: true, directory: '/t', machineName: 'foo', user: 'al' });
  });
  it('long options take =VALUE or the next argument', () => {
    expect(parse('--directory=/a').settings.directory).toBe('/a');
    expect(parse('--directory', '/b').settings.directory).toBe('/b');
  });
  it('records what the command line set', () => {
    const cl = parse('--bind=/a', '--read-only', '-E', 'A=1', '--rlimit=NOFILE=10', '-U');
    expect([...cl.set].sort()).toEqual(['custom-mounts', 'environment', 'read-only', 'rlimit-NOFILE', 'userns']);
  });
  it('-b and -a cannot go together', () => {
    expect(() => parse('-b', '-a')).toThrow('--boot and --as-pid2 may not be combined.');
  });
  it('-U picks a range and auto ownership', () => {
    expect(parse('-U').settings).toMatchObject({ privateUsers: { mode: 'pick' }, privateUsersOwnership: 'auto' });
    expect(parse('-U', '--private-users-ownership=chown').settings.privateUsersOwnership).toBe('chown');
  });
  it('-n implies a private network; --network-zone too', () => {
    expect(parse('-n').settings).toMatchObject({ networkVeth: true, privateNetwork: true });
    expect(parse('--network-zone=z').settings).toMatchObject({ networkZone: 'z', networkVeth: true, privateNetwork: true });
  });
  it('--network-zone= and --network-bridge= names are checked at once, with systemd 252\'s words', () => {
    expect(() => parse('--network-zone=averyveryverylongzone')).toThrow(new SettingsError('Network zone name not valid: vz-averyveryverylongzone', '--network-zone', 'averyveryverylongzone'));
    expect(() => parse('--network-zone=a:b')).toThrow('Network zone name not valid: vz-a:b');
    expect(parse('--network-zone=twelve-chars').settings.networkZone).toBe('twelve-chars');
    expect(() => parse('--network-bridge=a/b')).toThrow('Bridge interface name not valid: a/b');
  });
  it('--cpu-affinity= (empty) resets the affinity, and masks a .nspawn file\'s CPUAffinity=', () => {
    expect(parse('--cpu-affinity=0-1').settings.cpuAffinity).toEqual([0, 1]);
    const cl = parse('--cpu-affinity=0-1', '--cpu-affinity=');
    expect(cl.settings.cpuAffinity).toBeUndefined();
    expect(cl.set.has('cpu-affinity')).toBe(true);
    expect(parse('--cpu-affinity= , ').settings.cpuAffinity).toBeUndefined();
    expect(() => parse('--cpu-affinity=x')).toThrow("Failed to parse CPU affinity 'x'");
  });
  it('--port needs a private network', () => {
    expect(() => parse('-p', '80')).toThrow('Cannot use --port= without private networking.');
    expect(parse('-n', '-p', 'udp:53:5353').settings.exposePorts).toEqual([{ protocol: 'udp', hostPort: 53, containerPort: 5353 }]);
  });
  it('--setenv: NAME=VALUE, and NAME alone takes our value; later wins', () => {
    expect(parse('-E', 'A=1', '--setenv=A=2', '-E', 'FROMHOST', '-E', 'MISSING').settings.environment).toEqual(['A=2', 'FROMHOST=yes']);
    expect(() => parse('-E', '1BAD=x')).toThrow(/not valid/);
  });
  it('bind specs with options and escaped colons', () => {
    const cl = parse('--bind=/a\\:b:/c:norbind', '--bind-ro=/d');
    expect(cl.settings.customMounts).toEqual([
      { type: 'bind', source: '/a:b', destination: '/c', readOnly: false, recursive: false, options: 'norbind' },
      { type: 'bind', source: '/d', destination: '/d', readOnly: true, recursive: true },
    ]);
    expect(parse('--bind=rel:/dst').settings.customMounts?.[0]).toMatchObject({ source: '/work/rel', destination: '/dst' });
    expect(() => parse('--bind=relative')).toThrow('Failed to parse --bind(-ro)= argument relative: Invalid bind mount specification: Invalid argument');
    expect(() => parse('--bind=/a:relative')).toThrow('Failed to parse --bind(-ro)= argument /a:relative: Invalid bind mount specification: Invalid argument');
    // 252 reads the options only when it mounts: taken here, refused by the start (bindMountOptionsError())
    const bogus = parse('--bind=/a:/b:rbind,bogus').settings.customMounts![0]!;
    expect(bogus).toEqual({ type: 'bind', source: '/a', destination: '/b', readOnly: false, recursive: true, options: 'rbind,bogus' });
    expect(bindMountOptionsError(bogus)).toBe('Invalid bind mount option: bogus');
    expect(bindMountOptionsError(cl.settings.customMounts![0]!)).toBeUndefined();
  });
  it('tmpfs and overlay specs', () => {
    expect(parse('--tmpfs=/x').settings.customMounts).toEqual([{ type: 'tmpfs', destination: '/x', options: 'mode=0755' }]);
    expect(parse('--overlay=/l:/u:/d').settings.customMounts).toEqual([
      { type: 'overlay', lowers: ['/l'], upper: '/u', destination: '/d', readOnly: false },
    ]);
    expect(parse('--overlay-ro=/l1:/l2:/u:/d').settings.customMounts?.[0]).toMatchObject({ lowers: ['/l1', '/l2'], upper: '/u', readOnly: true });
    expect(() => parse('--overlay=/only')).toThrow(/at least two/);
  });
  it('-M, --hostname and --uuid are validated', () => {
    expect(() => parse('-M', 'bad_name')).toThrow('Invalid machine name: bad_name');
    expect(() => parse('--hostname=-x')).toThrow('Invalid hostname: -x');
    expect(parse('--uuid=0123456789abcdef0123456789ABCDEF').settings.uuid).toBe('01234567-89ab-cdef-0123-456789abcdef');
    expect(() => parse('--uuid=00000000-0000-0000-0000-000000000000')).toThrow('Machine UUID may not be all zeroes.');
    expect(() => parse('--uuid=nope')).toThrow('Invalid UUID: nope');
  });
  it('--kill-signal, --rlimit, --personality, --console, -P, --chdir', () => {
    const cl = parse('--kill-signal=SIGRTMIN+4', '--rlimit=RLIMIT_NOFILE=10:20', '--personality=x86', '-P', '--chdir=/tmp');
    expect(cl.settings).toMatchObject({
      killSignal: 38,
      rlimits: { NOFILE: { soft: 10n, hard: 20n } },
      personality: 'x86',
      consoleMode: 'pipe',
      workingDirectory: '/tmp',
    });
    expect(() => parse('--kill-signal=SIGNOPE')).toThrow('Cannot parse signal: SIGNOPE');
    expect(() => parse('--capability=CAP_NOPE')).toThrow('Failed to parse capability CAP_NOPE.');
    expect(parse('--capability=cap_sys_time,12', '--drop-capability=all').settings).toMatchObject({ capability: ['CAP_SYS_TIME', '12'], dropCapability: ['all'] });
    expect(() => parse('--rlimit=NOFILE=20:10')).toThrow('Failed to parse resource limit: 20:10');
    expect(() => parse('--rlimit=FOO=1')).toThrow('Unknown resource limit: FOO');
    expect(() => parse('--personality=arm')).toThrow(/unsupported personality 'arm'/);
    expect(() => parse('--console=tty')).toThrow(/Unknown console mode: tty/);
    expect(() => parse('--chdir=tmp')).toThrow('Working directory tmp is not an absolute path.');
  });
  it('--private-users forms', () => {
    expect(parse('--private-users=no').settings.privateUsers).toEqual({ mode: 'no' });
    expect(parse('--private-users').settings.privateUsers).toEqual({ mode: 'pick' });
    expect(parse('--private-users=65536').settings.privateUsers).toEqual({ mode: 'fixed', shift: 65536, range: 65536 });
    expect(parse('--private-users=65536:1000').settings.privateUsers).toEqual({ mode: 'fixed', shift: 65536, range: 1000 });
    expect(() => parse('--private-users=x:y')).toThrow(/--private-users=x:y/);
  });
  it('unknown options and missing arguments name the option', () => {
    expect(() => parse('--nope')).toThrow(SettingsError);
    expect(() => parse('--nope')).toThrow("unrecognized option '--nope'");
    expect(() => parse('-X')).toThrow("invalid option -- 'X'");
    expect(() => parse('-D')).toThrow("option requires an argument -- 'D'");
    expect(() => parse('--directory')).toThrow("option '--directory' requires an argument");
    expect(() => parse('--read-only=yes')).toThrow("option '--read-only' doesn't allow an argument");
  });
  it('options of features other hosts have are accepted but recorded as unsupported', () => {
    expect(parse('--slice=x', '-Z', 'ctx').unsupported).toEqual(['--selinux-context']);
  });
  describe('--share-system and $SYSTEMD_NSPAWN_SHARE_* (parse_environment() after the options)', () => {
    const withEnv = (environ: Record<string, string>, ...argv: string[]) => {
      const warned: string[] = [];
      const cl = parseCommandLine(argv, { cwd: '/work', environ, warn: (w) => warned.push(w) });
      return { shared: cl.settings.sharedNamespaces, keyed: cl.set.has('clone-ns-flags'), warnings: cl.warnings, warned, unsupported: cl.unsupported };
    };
    const WARNING = 'Please do not use --share-system anymore, use $SYSTEMD_NSPAWN_SHARE_* instead.';

    it('--share-system shares all three, warns at once, and does not keep a bundle\'s namespaces out', () => {
      expect(withEnv({}, '--share-system')).toEqual({ shared: ['ipc', 'pid', 'uts'], keyed: false, warnings: [WARNING], warned: [WARNING], unsupported: [] });
      expect(withEnv({}, '-D', '/x')).toEqual({ shared: undefined, keyed: false, warnings: [], warned: [], unsupported: [] });
      // the warning is told before a later option's error
      const warned: string[] = [];
      expect(() => parseCommandLine(['--share-system', '--kill-signal=NOPE'], { environ: {}, warn: (w) => warned.push(w) })).toThrow(SettingsError);
      expect(warned).toEqual([WARNING]);
    });

    it('each variable shares (true) or unshares (false) its namespace, in 252\'s order, and keys clone-ns-flags', () => {
      expect(withEnv({ SYSTEMD_NSPAWN_SHARE_NS_PID: '1' }).shared).toEqual(['pid']);
      expect(withEnv({ SYSTEMD_NSPAWN_SHARE_NS_UTS: 'yes', SYSTEMD_NSPAWN_SHARE_NS_IPC: 'On' }).shared).toEqual(['ipc', 'uts']);
      expect(withEnv({ SYSTEMD_NSPAWN_SHARE_SYSTEM: 'TRUE' }).shared).toEqual(['ipc', 'pid', 'uts']);
      // SHARE_SYSTEM is read last: it wins over the single ones
      expect(withEnv({ SYSTEMD_NSPAWN_SHARE_NS_PID: '1', SYSTEMD_NSPAWN_SHARE_SYSTEM: 'no' })).toMatchObject({ shared: undefined, keyed: true });
      expect(withEnv({ SYSTEMD_NSPAWN_SHARE_NS_PID: '0', SYSTEMD_NSPAWN_SHARE_SYSTEM: 'y' }).shared).toEqual(['ipc', 'pid', 'uts']);
      // after the options: a false one takes back what --share-system shared
      expect(withEnv({ SYSTEMD_NSPAWN_SHARE_NS_PID: 'f' }, '--share-system')).toMatchObject({ shared: ['ipc', 'uts'], keyed: true, warnings: [WARNING] });
      expect(withEnv({ SYSTEMD_NSPAWN_SHARE_NS_IPC: 'off' })).toMatchObject({ shared: undefined, keyed: true });
    });

    it('a value that is not a boolean is refused naming the variable (an empty one too); --help comes first', () => {
      for (const [name, v] of [['SYSTEMD_NSPAWN_SHARE_NS_IPC', 'maybe'], ['SYSTEMD_NSPAWN_SHARE_NS_PID', ''], ['SYSTEMD_NSPAWN_SHARE_NS_UTS', ' 1'], ['SYSTEMD_NSPAWN_SHARE_SYSTEM', '2']] as const)
        expect(() => withEnv({ [name]: v }, '-D', '/x')).toThrow(`Failed to parse $${name}: Invalid argument`);
      expect(() => withEnv({ SYSTEMD_NSPAWN_SHARE_NS_IPC: 'maybe', SYSTEMD_NSPAWN_SHARE_NS_PID: 'x' })).toThrow('$SYSTEMD_NSPAWN_SHARE_NS_IPC');
      expect(parseCommandLine(['--help'], { environ: { SYSTEMD_NSPAWN_SHARE_NS_IPC: 'maybe' } }).help).toBe(true);
      // an option's own error comes before the environment's
      expect(() => parseCommandLine(['--kill-signal=NOPE'], { environ: { SYSTEMD_NSPAWN_SHARE_NS_IPC: 'maybe' } })).toThrow('Cannot parse signal: NOPE');
    });
  });
  it('-S/--slice= and --property= are kept as given (the assembly mangles and lays them out)', () => {
    const cl = parse('-S', 'foo/bar', '--property=MemoryMax=1M', '--property=TasksMax=4');
    expect(cl.settings.slice).toBe('foo/bar');
    expect(cl.settings.properties).toEqual(['MemoryMax=1M', 'TasksMax=4']);
    expect(cl.unsupported).toEqual([]);
  });
  it('--help and --version', () => {
    expect(parse('-h').help).toBe(true);
    expect(parse('--version').version).toBe(true);
  });
  it('--settings modes', () => {
    expect(parse('--settings=trusted').settings.settingsMode).toBe('trusted');
    expect(parse('--settings=0').settings.settingsMode).toBe('no');
    expect(() => parse('--settings=maybe')).toThrow(/--settings=/);
  });
  it('--template with --ephemeral is refused; -D with -i is refused', () => {
    expect(() => parse('--template=/t', '-x')).toThrow(/--template= or --ephemeral/);
    expect(() => parse('-D', '/a', '-i', '/b')).toThrow(/either --directory= or --image=/);
  });
});

describe('--OPTION=help', () => {
  it('lists the accepted values instead of parsing on', () => {
    expect(parseCommandLine(['--console=help', '-D', '/x']).listing).toEqual(['autopipe', 'interactive', 'passive', 'pipe', 'read-only']);
    const sig = parseCommandLine(['--kill-signal=help']).listing!;
    expect(sig.slice(0, 3)).toEqual(['0', 'HUP', 'INT']);
    expect(sig.slice(31, 35)).toEqual(['SYS', '32', '33', 'RTMIN+0']);
    expect(sig.at(-1)).toBe('RTMIN+30');
    expect(parseCommandLine(['--capability=help']).listing?.[0]).toBe('cap_chown');
    expect(parseCommandLine(['--hostname=help']).listing).toBeUndefined();
  });
});

describe('getopt_long() as systemd-nspawn uses it', () => {
  it('takes unique prefixes of long options, and refuses ambiguous ones naming the possibilities', () => {
    expect(parse('--dir=/x', '--no-pag', '--bind-r', '/srv').settings).toMatchObject({ directory: '/x', customMounts: [{ source: '/srv', readOnly: true }] });
    expect(() => parse('--net')).toThrow(
      "option '--net' is ambiguous; possibilities: '--network-interface' '--network-macvlan' '--network-ipvlan' '--network-veth' '--network-veth-extra' '--network-bridge' '--network-zone' '--network-namespace-path'",
    );
    expect(() => parse('--qu=1')).toThrow("option '--quiet' doesn't allow an argument");
    expect(() => parse('--nope=1')).toThrow("unrecognized option '--nope=1'");
  });
  it('stops at --help, --version and --OPTION=help as systemd-nspawn does', () => {
    expect(parse('-h', '--nope').help).toBe(true);
    expect(parse('--vers', '--nope').version).toBe(true);
    expect(parse('--cons=help', '--nope').listing?.[0]).toBe('autopipe');
  });
  it('refuses -a after -b (and -b after -a) where it sees it', () => {
    expect(() => parse('-b', '-a', '--nope')).toThrow('--boot and --as-pid2 may not be combined.');
    expect(() => parse('-ab')).toThrow('--boot and --as-pid2 may not be combined.');
  });
});
