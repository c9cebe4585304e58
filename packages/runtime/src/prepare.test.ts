import { describe, expect, it } from 'vitest';
import type { Settings } from '@nspawn/settings';
import type { Tree } from './host.js';
import type { SettingsFs } from '@nspawn/settings';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applySettingsFile, determineNames, findMachineImage, type PrepareEnv, prepareContainer } from './prepare.js';
import { ContainerError } from './errors.js';

const tree = (dirs: string[] = ['/usr'], files: Record<string, string> = {}): Tree => ({
  root: '/m/box',
  resolve: () => undefined,
  readFile: (p) => files[p],
  isDirectory: (p) => dirs.includes(p),
  readdir: () => [],
  lexists: () => false,
  readlink: () => undefined,
});

function env(over: Partial<PrepareEnv> = {}, t: Tree = tree()): PrepareEnv {
  return {
    stdinIsTTY: false,
    stdoutIsTTY: false,
    tree: () => t,
    exists: (p) => p === '/m/box' || p === '/host/dir',
    environ: {},
    hostname: () => 'host',
    ...over,
  };
}
const prep = (s: Settings, e: PrepareEnv = env(), u: string[] = []) => prepareContainer(s, e, u);

describe('prepareContainer', () => {
  it('names the machine after the directory and defaults the rest like systemd-nspawn', () => {
    const p = prep({ directory: '/m/box' });
    expect(p.config).toMatchObject({ machineName: 'box', hostname: 'box', startMode: 'pid1', console: 'read-only', parameters: [] });
    expect(p.config.uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(p.killSignal).toBe(0);
    expect(p.quiet).toBe(false);
  });
  it('interactive console on a terminal; autopipe picks pipe otherwise; pipe implies quiet', () => {
    expect(prep({ directory: '/m/box' }, env({ stdinIsTTY: true, stdoutIsTTY: true })).config.console).toBe('interactive');
    const ap = prep({ directory: '/m/box', consoleMode: 'autopipe' });
    expect(ap.config.console).toBe('pipe');
    expect(ap.quiet).toBe(true);
  });
  it('-M without -D means /var/lib/machines/NAME', () => {
    expect(() => prep({ machineName: 'foo' })).toThrow('Failed to resolve path /var/lib/machines/foo: No such file or directory');
  });
  it('refuses a tree without /usr, with systemd-nspawn\'s words', () => {
    expect(() => prep({ directory: '/m/box' }, env({}, tree([])))).toThrow(
      "Directory /m/box doesn't look like it has an OS tree (/usr/ directory is missing). Refusing.",
    );
  });
  it('refuses / and names it', () => {
    expect(() => prep({ directory: '/' }, env({ exists: () => true }))).toThrow(/root directory is not supported/);
  });
  it('allows / with --ephemeral, named after the host with a random suffix (determine_names())', () => {
    const p = prep({ directory: '/', ephemeral: true }, env({ exists: () => true }));
    expect(p.config).toMatchObject({ directory: '/', ephemeral: true });
    expect(p.config.machineName).toMatch(/^host-[0-9a-f]{16}$/);
    expect(p.config.hostname).toBe(p.config.machineName);
  });
  it('-x without -M: the name gets 16 random hex digits, different each time; with -M, or -x from a .nspawn file, it does not', () => {
    const e = env({ exists: () => true });
    const a = prep({ directory: '/m/box1', ephemeral: true }, e).config.machineName;
    const b = prep({ directory: '/m/box1', ephemeral: true }, e).config.machineName;
    expect(a).toMatch(/^box1-[0-9a-f]{16}$/);
    expect(b).toMatch(/^box1-[0-9a-f]{16}$/);
    expect(a).not.toBe(b);
    expect(prep({ directory: '/m/box1', ephemeral: true, machineName: 'fixed' }, e).config.machineName).toBe('fixed');
    // Ephemeral= of a settings file comes after determine_names(): the command line had no -x
    expect(prepareContainer({ directory: '/m/box1', ephemeral: true }, e, [], { directory: '/m/box1' }).config.machineName).toBe('box1');
  });
  it('--template: a missing directory is checked through the template; -M without -D means /var/lib/machines/NAME', () => {
    const seen: string[] = [];
    const e = env({ exists: (p) => p === '/m/tpl', tree: (r) => (seen.push(r), tree()) });
    expect(prep({ machineName: 'new', template: '/m/tpl' }, e).config).toMatchObject({ directory: '/var/lib/machines/new', template: '/m/tpl' });
    expect(seen).toEqual(['/m/tpl']);
    expect(() => prep({ machineName: 'new', template: '/m/none' }, e)).toThrow('Failed to resolve path /m/none: No such file or directory');
    expect(() => prep({ directory: '/m/box', template: '/m/box', ephemeral: true })).toThrow('--ephemeral and --template= may not be combined.');
  });
  it('cannot derive a machine name from a name with no host name characters', () => {
    expect(() => prep({ directory: '/m/___' }, env({ exists: () => true }))).toThrow('Failed to determine machine name automatically, please use -M.');
  });
  it('--hostname and -M', () => {
    expect(prep({ directory: '/m/box', machineName: 'm', hostname: 'h' }).config).toMatchObject({ machineName: 'm', hostname: 'h' });
  });
  it('--volatile: every mode implies --read-only (parse_argv()); yes and state allow / (run()), overlay does not', () => {
    for (const mode of ['yes', 'state', 'overlay'] as const)
      expect(prep({ directory: '/m/box', volatile: mode }).config).toMatchObject({ volatile: mode, readOnly: true });
    const off = prep({ directory: '/m/box', volatile: 'no' }).config;
    expect(off.readOnly).toBe(false);
    expect(off.volatile).toBeUndefined();
    expect(prep({ directory: '/', volatile: 'yes' }, env({ exists: () => true })).config.directory).toBe('/');
    expect(prep({ directory: '/', volatile: 'state' }, env({ exists: () => true })).config.directory).toBe('/');
    expect(() => prep({ directory: '/', volatile: 'overlay' }, env({ exists: () => true }))).toThrow(/root directory is not supported/);
  });
  it('features not built yet fail clearly instead of being ignored', () => {
    expect(() => prep({ directory: '/m/box' }, env(), ['--root-hash'])).toThrow(/--root-hash is not supported yet/);
  });
  it('-i with -U, --volatile= and --pivot-root= as systemd 252 takes them (the image is read at setup)', () => {
    const e = env({ exists: (p) => p === '/m/box.raw' });
    const v = prep({ image: '/m/box.raw', volatile: 'state', privateUsers: { mode: 'pick' } }, e).config;
    // every volatile mode implies --read-only; -U is pick with ownership auto
    expect(v).toMatchObject({ directory: '/run/nspawn/image-root', volatile: 'state', readOnly: true, image: { path: '/m/box.raw' } });
    expect(v.userns).toMatchObject({ pick: true });
    const p = prep({ image: '/m/box.raw', pivotRoot: { newRoot: '/srv/os', oldRoot: '/oldroot' }, ephemeral: true, privateUsers: { mode: 'pick' } }, e).config;
    expect(p).toMatchObject({ pivotRoot: { newRoot: '/srv/os', oldRoot: '/oldroot' }, ephemeral: true, readOnly: false });
  });
  it('-M NAME finds NAME.raw as image_find() does: -i on it, read-only when the file has no write bits (not with -x)', () => {
    const found = { path: '/var/lib/machines/box.raw', raw: true, readOnly: true };
    expect(determineNames({ machineName: 'box' }, '/', () => 'h', () => found)).toEqual({ directory: '/run/nspawn/image-root', machineName: 'box', image: found });
    expect(determineNames({ machineName: 'box' }, '/', () => 'h', () => ({ path: '/etc/machines/box', raw: false, readOnly: false }))).toEqual({
      directory: '/etc/machines/box',
      machineName: 'box',
    });
    // none: /var/lib/machines/NAME as before (its absence is said when it is resolved); --template never looks
    expect(determineNames({ machineName: 'box' }, '/', () => 'h', () => undefined)).toEqual({ directory: '/var/lib/machines/box', machineName: 'box' });
    expect(determineNames({ machineName: 'box', template: '/t' }, '/', () => 'h', () => found)).toEqual({ directory: '/var/lib/machines/box', machineName: 'box' });
  });
  it('findMachineImage(): per directory in the search path NAME first, then NAME.raw (a regular file), first directory wins', () => {
    const base = mkdtempSync(join(tmpdir(), 'nspawn-find-'));
    try {
      const [a, b] = [join(base, 'a'), join(base, 'b')];
      mkdirSync(a);
      mkdirSync(b);
      writeFileSync(join(b, 'img.raw'), '');
      mkdirSync(join(b, 'tree'));
      writeFileSync(join(a, 'tree.raw'), '');
      writeFileSync(join(a, 'file'), ''); // neither a directory nor NAME.raw: skipped
      mkdirSync(join(a, 'dir.raw')); // NAME.raw that is no regular file: skipped
      expect(findMachineImage('img', [a, b])).toEqual({ path: join(b, 'img.raw'), raw: true, readOnly: false });
      expect(findMachineImage('tree', [a, b])).toEqual({ path: join(a, 'tree.raw'), raw: true, readOnly: false });
      expect(findMachineImage('file', [a, b])).toBeUndefined();
      expect(findMachineImage('dir', [a, b])).toBeUndefined();
      chmodSync(join(b, 'img.raw'), 0o444);
      expect(findMachineImage('img', [a, b])?.readOnly).toBe(true);
      expect(findMachineImage('none', [a, b])).toBeUndefined();
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
  it('a bind mount\'s bad option fails the start with 252\'s words (it reads them when it mounts), before its source is looked at', () => {
    const bind = (options: string) => ({ type: 'bind' as const, source: '/nope', destination: '/mnt', readOnly: false, recursive: true, options });
    expect(() => prep({ directory: '/m/box', customMounts: [bind('rbind,bogus')] })).toThrow(new ContainerError('Invalid bind mount option: bogus'));
    expect(() => prep({ directory: '/m/box', customMounts: [bind('norbind')] })).toThrow(/Failed to stat \/nope/);
  });
  it('--pivot-root: the checks look at NEW inside the tree, naming what systemd-nspawn 252 names', () => {
    const seen: string[] = [];
    const outer = { ...tree([]), resolve: (p: string) => (p === '/sysroot' ? '/m/box/sysroot' : undefined) };
    const inner = { ...tree(['/usr']), root: '/m/box/sysroot' };
    const e = env({ tree: (r) => (seen.push(r), r === '/m/box' ? outer : inner) });
    const p = prep({ directory: '/m/box', pivotRoot: { newRoot: '/sysroot', oldRoot: '/oldroot' } }, e);
    expect(p.config.pivotRoot).toEqual({ newRoot: '/sysroot', oldRoot: '/oldroot' });
    expect(p.config.directory).toBe('/m/box');
    expect(seen).toEqual(['/m/box', '/m/box/sysroot']);
    // no /usr in NEW: the message names the directory (pid1), or DIRECTORY/NEW's os-release (boot)
    const bare = env({ tree: (r) => (r === '/m/box' ? { ...tree(['/usr']), resolve: () => undefined } : { ...tree([]), root: r }) });
    expect(() => prep({ directory: '/m/box', pivotRoot: { newRoot: '/nope' } }, bare)).toThrow(
      "Directory /m/box doesn't look like it has an OS tree (/usr/ directory is missing). Refusing.",
    );
    expect(() => prep({ directory: '/m/box', startMode: 'boot', pivotRoot: { newRoot: '/nope' } }, bare)).toThrow(
      "Directory /m/box/nope doesn't look like an OS root directory (os-release file is missing). Refusing.",
    );
  });

  it('--bind-user= (BindUser=) needs a user namespace (verify_arguments()), and drops duplicates', () => {
    expect(() => prep({ directory: '/m/box', bindUser: ['alice'] })).toThrow(new ContainerError('--bind-user= requires --private-users'));
    expect(() => prep({ directory: '/m/box', bindUser: ['alice'], privateUsers: { mode: 'no' } })).toThrow('--bind-user= requires --private-users');
    const p = prep({ directory: '/m/box', bindUser: ['alice', 'bob', 'alice'], privateUsers: { mode: 'pick' } });
    expect(p.config.bindUser).toEqual(['alice', 'bob']);
  });
  it('reads --load-credential= at prepare and keeps --set-credential= values', () => {
    const reader = { readFile: (p: string) => { if (p === '/c') return new Uint8Array([1, 2]); throw Object.assign(new Error('x'), { code: 'ENOENT' }); }, readSocket: () => new Uint8Array() };
    const p = prep({ directory: '/m/box', credentials: [{ id: 'a', data: new Uint8Array([9]) }, { id: 'b', path: '/c', socket: true }] }, env({ credentials: reader }));
    expect(p.config.credentials).toEqual([{ id: 'a', data: new Uint8Array([9]) }, { id: 'b', data: new Uint8Array([1, 2]) }]);
    expect(() => prep({ directory: '/m/box', credentials: [{ id: 'b', path: '/nope', socket: true }] }, env({ credentials: reader }))).toThrow("Failed to read credential '/nope': No such file or directory");
  });
  it('network options reach the config (src/network.ts)', () => {
    expect(prep({ directory: '/m/box', networkVeth: true, privateNetwork: true, exposePorts: [{ protocol: 'tcp', hostPort: 8080, containerPort: 80 }] }).config.network).toEqual({
      veth: true,
      ports: [{ protocol: 'tcp', hostPort: 8080, containerPort: 80 }],
    });
    expect(prep({ directory: '/m/box', networkZone: 'z', networkVeth: true, privateNetwork: true }, env({ environ: { NSPAWN_NETWORK_AUTO: '0' } })).config.network).toEqual({ veth: true, zone: 'z', autoConfigure: false });
    expect(prep({ directory: '/m/box', privateNetwork: true }).config.network).toBeUndefined();
  });
  it('a missing bind source names the option', () => {
    expect(() =>
      prep({ directory: '/m/box', customMounts: [{ type: 'bind', source: '/nope', destination: '/x', readOnly: false, recursive: true }] }),
    ).toThrow('Failed to stat /nope: No such file or directory (--bind /nope:/x)');
  });
  it('--user is resolved in the tree', () => {
    const t = tree(['/usr'], { '/etc/passwd': 'al:x:7:8::/home/al:/bin/sh\n' });
    expect(prep({ directory: '/m/box', user: 'al' }, env({}, t)).config.user).toMatchObject({ uid: 7, gid: 8 });
    expect(() => prep({ directory: '/m/box', user: 'bo' }, env({}, t))).toThrow('Failed to resolve user bo.');
  });
  it('the kill signal defaults to SIGRTMIN+3 when booting', () => {
    expect(prep({ directory: '/m/box', killSignal: 15 }).killSignal).toBe(15);
    const os = { ...tree(), resolve: (p: string) => (p === '/usr/lib/os-release' ? '/m/box/usr/lib/os-release' : undefined) };
    expect(prep({ directory: '/m/box', startMode: 'boot' }, env({}, os)).killSignal).toBe(34 + 3);
    expect(prep({ directory: '/m/box', startMode: 'boot', killSignal: 15 }, env({}, os)).killSignal).toBe(15);
  });
  it('-b wants an os-release, with systemd-nspawn\'s words', () => {
    expect(() => prep({ directory: '/m/box', startMode: 'boot' })).toThrow(
      "Directory /m/box doesn't look like an OS root directory (os-release file is missing). Refusing.",
    );
    const os = { ...tree([]), resolve: (p: string) => (p === '/etc/os-release' ? '/m/box/etc/os-release' : undefined) };
    expect(prep({ directory: '/m/box', startMode: 'boot', parameters: ['quiet'] }, env({}, os)).config).toMatchObject({ startMode: 'boot', parameters: ['quiet'] });
  });
  it('--notify-ready, --link-journal and --uuid', () => {
    const p = prep({ directory: '/m/box', notifyReady: true, linkJournal: 'guest', linkJournalTry: true, uuid: '11111111-2222-3333-4444-555555555555' });
    expect(p.notifyReady).toBe(true);
    expect(p.config).toMatchObject({ linkJournal: 'guest', linkJournalTry: true, uuid: '11111111-2222-3333-4444-555555555555' });
    expect(prep({ directory: '/m/box', linkJournal: 'auto' }).config.linkJournal).toBeUndefined();
    expect(prep({ directory: '/m/box' }).notifyReady).toBe(false);
  });
  it('-x with --link-journal=host|guest is refused, as 252\'s verify_arguments(); try-, auto and no are not', () => {
    for (const linkJournal of ['host', 'guest'] as const)
      expect(() => prep({ directory: '/m/box', ephemeral: true, linkJournal })).toThrow('--ephemeral and --link-journal={host,guest} may not be combined.');
    for (const linkJournal of ['host', 'guest'] as const) expect(prep({ directory: '/m/box', ephemeral: true, linkJournal, linkJournalTry: true }).config.ephemeral).toBe(true);
    for (const linkJournal of ['auto', 'no'] as const) expect(prep({ directory: '/m/box', ephemeral: true, linkJournal }).config.ephemeral).toBe(true);
  });
  it("the tree's machine ID is the container's UUID; empty, missing or 'uninitialized' leave it to --uuid", () => {
    const withId = (text: string) => env({}, tree(['/usr'], { '/etc/machine-id': text }));
    const uuid = '11111111-2222-3333-4444-555555555555';
    expect(prep({ directory: '/m/box', uuid }, withId('0123456789abcdef0123456789abcdef\n')).config.uuid).toBe('01234567-89ab-cdef-0123-456789abcdef');
    for (const t of ['', 'uninitialized\n']) expect(prep({ directory: '/m/box', uuid }, withId(t)).config.uuid).toBe(uuid);
    expect(() => prep({ directory: '/m/box' }, withId('00000000000000000000000000000000\n'))).toThrow('Machine ID in container image is zero, refusing.');
    expect(() => prep({ directory: '/m/box' }, withId('bogus\n'))).toThrow('Failed to read machine ID from container image: Invalid argument');
  });
  it('SYSTEMD_NSPAWN_API_VFS_WRITABLE', () => {
    expect(prep({ directory: '/m/box' }, env({ environ: { SYSTEMD_NSPAWN_API_VFS_WRITABLE: 'yes' } })).config.apiVfsWritable).toBe('yes');
    expect(prep({ directory: '/m/box' }, env({ environ: { SYSTEMD_NSPAWN_API_VFS_WRITABLE: 'network' } })).config.apiVfsWritable).toBe('network');
  });
  it('$NSPAWN_DEVICE_POLICY picks the device controllers', () => {
    const dc = (v?: string) => prep({ directory: '/m/box' }, env({ environ: v === undefined ? {} : { NSPAWN_DEVICE_POLICY: v } })).config.deviceCgroup;
    expect(dc()).toBeUndefined();
    expect(dc('')).toBeUndefined();
    expect(dc('v1')).toEqual(['v1']);
    expect(dc('bpf')).toEqual(['bpf']);
    expect(dc('bpf, v1,bpf')).toEqual(['bpf', 'v1']);
    expect(dc('none')).toEqual([]);
    expect(() => dc('off')).toThrow('Invalid $NSPAWN_DEVICE_POLICY=off: expected "v1", "bpf", "v1,bpf" or "none".');
  });
  it('--private-users=BASE:COUNT becomes the map', () => {
    expect(prep({ directory: '/m/box', privateUsers: { mode: 'fixed', shift: 65536, range: 65536 } }).config.userns).toEqual({ shift: 65536, range: 65536 });
  });
  it('-U, PrivateUsers=yes and ownership leave the range to the private-users extension', () => {
    expect(prep({ directory: '/m/box', privateUsers: { mode: 'pick' }, privateUsersOwnership: 'auto' }).config.userns).toEqual({ shift: 0, range: 65536, pick: true, ownership: 'auto' });
    expect(prep({ directory: '/m/box', privateUsers: { mode: 'pick', range: 65536 } }).config.userns).toEqual({ shift: 0, range: 65536, pick: true });
    expect(prep({ directory: '/m/box', privateUsers: { mode: 'fixed', range: 65536 } }).config.userns).toEqual({ shift: 0, range: 65536, fromOwner: true });
    expect(prep({ directory: '/m/box', privateUsers: { mode: 'fixed', shift: 0x80000, range: 65536 }, privateUsersOwnership: 'chown' }).config.userns).toEqual({ shift: 0x80000, range: 65536, ownership: 'chown' });
    expect(prep({ directory: '/m/box', privateUsers: { mode: 'no' }, privateUsersOwnership: 'chown' }).config.userns).toBeUndefined();
    expect(() => prep({ directory: '/m/box', privateUsers: { mode: 'pick' }, privateUsersOwnership: 'foreign' })).toThrow('--private-users-ownership=foreign is not supported yet');
  });
  it('--share-system and $SYSTEMD_NSPAWN_SHARE_* (Settings.sharedNamespaces): shared, unregistered and -b refused without PID or UTS', () => {
    const seen = (sharedNamespaces: Settings['sharedNamespaces'], register?: boolean) => {
      const c = prep({ directory: '/m/box', ...(sharedNamespaces ? { sharedNamespaces } : {}), ...(register !== undefined ? { register } : {}) }).config;
      return { register: c.register, sharedNamespaces: c.sharedNamespaces };
    };
    expect(seen(undefined)).toEqual({ register: undefined, sharedNamespaces: undefined });
    expect(seen([])).toEqual({ register: undefined, sharedNamespaces: undefined });
    expect(seen(['ipc'])).toEqual({ register: undefined, sharedNamespaces: ['ipc'] });
    expect(seen(['pid'], true)).toEqual({ register: false, sharedNamespaces: ['pid'] });
    expect(seen(['uts'])).toEqual({ register: false, sharedNamespaces: ['uts'] });
    expect(seen(['ipc', 'pid', 'uts'])).toEqual({ register: false, sharedNamespaces: ['ipc', 'pid', 'uts'] });
    for (const startMode of ['boot', 'pid2'] as const) {
      for (const shared of [['pid'], ['uts'], ['ipc', 'pid', 'uts']] as const)
        expect(() => prep({ directory: '/m/box', startMode, sharedNamespaces: [...shared] })).toThrow('--boot cannot be used without namespacing.');
      expect(() => prep({ directory: '/m/box', startMode, sharedNamespaces: ['ipc'] })).not.toThrow('namespacing');
    }
    // a bundle's linux.namespaces, once merged, are what counts
    const c = prep({ directory: '/m/box', sharedNamespaces: ['pid'], oci: { bundle: '/b', namespaces: ['ipc', 'pid'] } }).config;
    expect(c.sharedNamespaces).toEqual(['uts']);
  });
});

describe('determineNames and the settings file', () => {
  it('/ is named after the host', () => {
    expect(determineNames({ directory: '/' }, '/', () => 'myhost')).toEqual({ directory: '/', machineName: 'myhost' });
    expect(determineNames({}, '/srv/My_Box.d')).toEqual({ directory: '/srv/My_Box.d', machineName: 'MyBox.d' });
  });
  const fs = (files: Record<string, string>): SettingsFs => ({ exists: (p) => p in files, readFile: (p) => files[p]! });
  it('a trusted file fills what the command line did not set', () => {
    const r = applySettingsFile(
      { settings: { directory: '/m/box', hostname: 'cli' }, set: new Set(['hostname']) },
      fs({ '/run/systemd/nspawn/box.nspawn': '[Exec]\nHostname=file\nEnvironment=A=1\n[Files]\nBind=/srv\n' }),
    );
    expect(r.settings).toMatchObject({ hostname: 'cli', environment: ['A=1'], customMounts: [{ type: 'bind', source: '/srv' }] });
    expect(r.path).toBe('/run/systemd/nspawn/box.nspawn');
    expect(r.messages).toEqual([]);
  });
  it('an untrusted file beside the image loses its privileged settings, with a warning', () => {
    const r = applySettingsFile(
      { settings: { directory: '/m/box' }, set: new Set() },
      fs({ '/m/box.nspawn': '[Exec]\nEnvironment=A=1\n[Files]\nBind=/srv\n' }),
    );
    expect(r.settings.environment).toEqual(['A=1']);
    expect(r.settings.customMounts).toBeUndefined();
    expect(r.messages).toEqual(['Ignoring TemporaryFileSystem=, Bind= and BindReadOnly= settings, file /m/box.nspawn is not trusted.']);
  });
  it('--oci-bundle=: the bundle instead of any .nspawn file, and its refusal as one line', () => {
    const files = fs({
      '/b/config.json': JSON.stringify({ ociVersion: '1.0.0', root: { path: 'box' }, hostname: 'oci', process: { args: ['/bin/true'], user: { uid: 5, gid: 6 } } }),
      '/run/systemd/nspawn/box.nspawn': '[Exec]\nHostname=file\n',
      '/bad/config.json': '{"ociVersion":"1.0.0","foo":1}',
    });
    const r = applySettingsFile({ settings: { ociBundle: '/b' }, set: new Set() }, files);
    expect(r.settings).toMatchObject({ directory: '/b/box', hostname: 'oci', parameters: ['/bin/true'], oci: { bundle: '/b', uid: 5, gid: 6 } });
    expect(r.path).toBe('/b/config.json');
    expect(() => applySettingsFile({ settings: { ociBundle: '/bad' }, set: new Set() }, files)).toThrow("/bad/config.json:1:29: foo: Unexpected OCI element 'foo' of type 'unsigned'.");
    // the bundle's user and capabilities reach the config
    const e = env({ exists: (p) => p === '/b/box' });
    const p = prepareContainer(r.settings, e);
    expect(p.config).toMatchObject({ directory: '/b/box', machineName: 'box', oci: { uid: 5, gid: 6 } });
    expect(p.config.user).toBeUndefined();
  });
  it('--settings=no reads nothing; diagnostics name file and line', () => {
    const files = fs({ '/m/box.nspawn': '[Exec]\nNope=1\n' });
    expect(applySettingsFile({ settings: { directory: '/m/box', settingsMode: 'no' }, set: new Set() }, files).messages).toEqual([]);
    expect(applySettingsFile({ settings: { directory: '/m/box' }, set: new Set() }, files).messages).toEqual([
      "/m/box.nspawn:2: Unknown key 'Nope' in section [Exec], ignoring.",
    ]);
  });
});
