import { describe, expect, it } from 'vitest';
import { mergeEnvironment, mergeSettings } from './merge.js';
import { type SettingKey, type Settings, type SettingsMode } from './model.js';
import { parseNspawnFile } from './nspawn-file.js';

const PATH = '/var/lib/machines/web.nspawn';
const file = (text: string) => parseNspawnFile(text, { path: PATH, cwd: '/' }).settings;
const merge = (cli: Settings, set: SettingKey[], f: Settings, trusted = true, mode: SettingsMode = 'yes') =>
  mergeSettings({ settings: cli, set: new Set(set) }, { settings: f, trusted, mode, path: PATH });

describe('command line against file', () => {
  it('takes the file for groups the command line did not set', () => {
    const r = merge({ hostname: 'cli', user: 'cli' }, ['hostname'], file('[Exec]\nHostname=file\nUser=file\nTimezone=off\n'));
    expect(r).toEqual({ settings: { hostname: 'cli', user: 'file', timezone: 'off' }, warnings: [] });
  });

  it('lets the file win everywhere with --settings=override', () => {
    const r = merge({ hostname: 'cli', user: 'cli' }, ['hostname', 'user'], file('[Exec]\nHostname=file\n'), true, 'override');
    expect(r.settings).toEqual({ hostname: 'file', user: 'cli' });
  });

  it('ignores the file with --settings=no', () => {
    expect(merge({ hostname: 'cli' }, [], file('[Exec]\nHostname=file\n'), true, 'no')).toEqual({ settings: { hostname: 'cli' }, warnings: [] });
  });

  it('takes Parameters= only together with Boot= or ProcessTwo=', () => {
    expect(merge({}, [], file('[Exec]\nParameters=/bin/sh\n')).settings).toEqual({});
    expect(merge({ parameters: ['/bin/true'] }, ['start-mode'], file('[Exec]\nBoot=yes\nParameters=x\n')).settings).toEqual({ parameters: ['/bin/true'] });
    expect(merge({}, [], file('[Exec]\nProcessTwo=yes\nParameters=/bin/sh -l\n')).settings).toEqual({ startMode: 'pid2', parameters: ['/bin/sh', '-l'] });
    // Boot= without Parameters= clears what was there (free_and_replace with NULL)
    expect(merge({ parameters: ['x'] }, [], file('[Exec]\nBoot=yes\n'), true, 'override').settings).toEqual({ startMode: 'boot' });
  });

  it('replaces the environment list as a whole; mergeEnvironment() builds the final one', () => {
    expect(merge({ environment: ['A=cli'] }, [], file('[Exec]\nEnvironment=B=file\n')).settings.environment).toEqual(['B=file']);
    expect(merge({ environment: ['A=cli'] }, ['environment'], file('[Exec]\nEnvironment=B=file\n')).settings.environment).toEqual(['A=cli']);
    expect(mergeEnvironment(['PATH=/bin', 'container=nspawn'], ['A=1', 'PATH=/usr/bin'], undefined, ['A=2'])).toEqual(['PATH=/usr/bin', 'container=nspawn', 'A=2']);
  });

  it('masks each resource limit on its own', () => {
    const f = file('[Exec]\nLimitNOFILE=10\nLimitCORE=0\n');
    const r = merge({ rlimits: { NOFILE: { soft: 5n, hard: 5n } } }, ['rlimit-NOFILE'], f);
    expect(r.settings.rlimits).toEqual({ NOFILE: { soft: 5n, hard: 5n }, CORE: { soft: 0n, hard: 0n } });
  });
});

describe('untrusted files', () => {
  const PRIVILEGED = `[Exec]
Hostname=plain
Capability=CAP_NET_ADMIN
AmbientCapability=CAP_CHOWN
DropCapability=CAP_MKNOD
MachineID=0123456789abcdef0123456789abcdef
PrivateUsers=pick
SystemCallFilter=@basic-io
LimitNOFILE=1024
LimitCPU=10
OOMScoreAdjust=100
CPUAffinity=0
LinkJournal=try-guest
[Files]
Bind=/tmp:/mnt
BindUser=alice
[Network]
Private=yes
Port=80
`;

  it("drops privileged settings with systemd's warnings, in systemd's order", () => {
    const r = merge({}, ['directory', 'start-mode'], file(PRIVILEGED), false);
    expect(r.warnings).toEqual([
      `Ignoring Capability= setting, file ${PATH} is not trusted.`,
      `Ignoring AmbientCapability= setting, file ${PATH} is not trusted.`,
      `Ignoring MachineID= setting, file ${PATH} is not trusted.`,
      `Ignoring TemporaryFileSystem=, Bind= and BindReadOnly= settings, file ${PATH} is not trusted.`,
      `Ignoring network settings, file ${PATH} is not trusted.`,
      `Ignoring Port= setting, file ${PATH} is not trusted.`,
      `Ignoring PrivateUsers= and PrivateUsersChown= settings, file ${PATH} is not trusted.`,
      `Ignoring bind user setting, file ${PATH} is not trusted.`,
      `Ignoring SystemCallFilter= settings, file ${PATH} is not trusted.`,
      `Ignoring LimitCPU= setting, file '${PATH}' is not trusted.`,
      `Ignoring LimitNOFILE= setting, file '${PATH}' is not trusted.`,
      `Ignoring OOMScoreAdjust= setting, file '${PATH}' is not trusted.`,
      `Ignoring CPUAffinity= setting, file '${PATH}' is not trusted.`,
      `Ignoring journal link setting, file '${PATH}' is not trusted.`,
    ]);
    // what is not privileged still applies, DropCapability= included
    expect(r.settings).toEqual({ hostname: 'plain', dropCapability: ['CAP_MKNOD'] });
  });

  it('applies everything from a trusted file (or with --settings=trusted)', () => {
    for (const [trusted, mode] of [[true, 'yes'], [false, 'trusted']] as const) {
      const r = merge({}, [], file(PRIVILEGED), trusted, mode);
      expect(r.warnings).toEqual([]);
      expect(r.settings).toMatchObject({
        capability: ['CAP_NET_ADMIN'],
        ambientCapability: ['CAP_CHOWN'],
        machineId: '0123456789abcdef0123456789abcdef',
        privateUsers: { mode: 'pick' },
        privateUsersOwnership: 'chown',
        systemCallFilter: { allow: ['@basic-io'], deny: [] },
        rlimits: { NOFILE: { soft: 1024n, hard: 1024n }, CPU: { soft: 10n, hard: 10n } },
        privateNetwork: true,
        networkVeth: false,
        exposePorts: [{ protocol: 'tcp', hostPort: 80, containerPort: 80 }],
        customMounts: [{ type: 'bind', source: '/tmp', destination: '/mnt' }],
      });
    }
  });

  it('lets an untrusted file add to the system call deny list', () => {
    const r = merge({}, [], file('[Exec]\nSystemCallFilter=~@obsolete\n'), false);
    expect(r).toEqual({ settings: { systemCallFilter: { allow: [], deny: ['@obsolete'] } }, warnings: [] });
  });

  it('does not warn for groups the command line set', () => {
    const r = merge({ hostname: 'x' }, ['capability', 'network', 'expose-ports', 'rlimit-NOFILE'], file('[Exec]\nCapability=CAP_KILL\nLimitNOFILE=1\n[Network]\nPrivate=yes\nPort=80\n'), false);
    expect(r.warnings).toEqual([]);
  });
});

describe('capabilities and networking', () => {
  it('adds capabilities to the command line ones and drops the dropped ones', () => {
    const r = merge({ capability: ['CAP_KILL'], dropCapability: ['CAP_CHOWN'] }, [], file('[Exec]\nCapability=CAP_CHOWN\nDropCapability=CAP_MKNOD\n'), true, 'override');
    expect(r.settings).toEqual({ capability: ['CAP_CHOWN', 'CAP_KILL'], dropCapability: ['CAP_MKNOD'] });
  });

  it('implies CAP_NET_ADMIN for a private network and removes it for a configured host network', () => {
    expect(merge({}, [], file('[Network]\nZone=web\n')).settings).toEqual({
      capability: ['CAP_NET_ADMIN'],
      privateNetwork: true,
      networkVeth: true,
      networkZone: 'web',
    });
    expect(merge({ capability: ['CAP_NET_ADMIN'] }, [], file('[Network]\nPrivate=no\n')).settings).toEqual({ privateNetwork: false, networkVeth: false });
    // an untrusted network setting is ignored entirely, without a Capability= warning
    expect(merge({}, [], file('[Network]\nPrivate=yes\n'), false)).toEqual({
      settings: {},
      warnings: [`Ignoring network settings, file ${PATH} is not trusted.`],
    });
  });

  it('replaces all network settings together', () => {
    const r = merge({ networkBridge: 'br0', networkInterfaces: ['eth1'] }, [], file('[Network]\nMACVLAN=eth0\n'));
    expect(r.settings).toEqual({ capability: ['CAP_NET_ADMIN'], networkMacvlan: ['eth0'], privateNetwork: true, networkVeth: false });
  });
});
