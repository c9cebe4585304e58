import { describe, expect, it } from 'vitest';
import { bindUserMaps, bindUserOps, type HostUserDb, hostUserDb, looksLikeHashedPassword, resolveBindUsers } from './bind-user.js';
import { planContainer } from './plan.js';
import { bareHost, baseConfig, emptyTree } from './test/fixtures.js';

const HOST: Record<string, string> = {
  '/etc/passwd': [
    'root:x:0:0:root:/root:/bin/bash',
    'daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin',
    'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin',
    'alice:x:1000:1000:Alice:/home/alice:/bin/bash',
    'bob:x:1001:1001::/home/bob:/bin/sh',
    'shared:x:1002:100::/home/shared:/bin/sh',
    'orphan:x:1003:4242::/home/orphan:/bin/sh',
    'high:x:200000:200000::/home/high:/bin/sh',
    'broken line',
  ].join('\n'),
  '/etc/group': ['root:x:0:', 'daemon:x:1:', 'users:x:100:', 'alice:x:1000:', 'bob:x:1001:', 'high:x:200000:'].join('\n'),
  '/etc/shadow': ['alice:$y$j9T$salt$hash:19000:0:99999:7:::', 'bob:*:19000::::::'].join('\n'),
};
const db: HostUserDb = hostUserDb((p) => HOST[p]);
const tree = (passwd = 'root:x:0:0::/root:/bin/sh\n', group = 'root:x:0:\n') => ({
  readFile: (p: string) => (p === '/etc/passwd' ? passwd : p === '/etc/group' ? group : undefined),
});
const resolve = (names: string[], t = tree(), shift = 0x5e0000, range = 65536) => resolveBindUsers(names, db, t, shift, range);

describe('looksLikeHashedPassword', () => {
  it.each([['$y$abc', true], ['!', true], ['!!$6$x', true], ['', true], ['x', false], ['*', false], ['!*', false], [undefined, false]])('%j: %s', (s, want) =>
    expect(looksLikeHashedPassword(s)).toBe(want),
  );
});

describe('resolveBindUsers (bind_user_prepare(), convert_user())', () => {
  it("writes 252's records: the group, the privileged part with the hash, the user, with UID links", () => {
    const [a] = resolve(['alice']);
    expect(a).toMatchObject({ name: 'alice', hostUid: 1000, hostGid: 1000, uid: 60514, home: '/home/alice' });
    expect(a!.records).toEqual([
      { file: 'alice.group', link: '60514.group', mode: 0o644, content: '{"groupName":"alice","gid":60514,"service":"io.systemd.NSpawn"}\n' },
      { file: 'alice.user-privileged', link: '60514.user-privileged', mode: 0o600, content: '{"privileged":{"hashedPassword":["$y$j9T$salt$hash"]}}\n' },
      {
        file: 'alice.user',
        link: '60514.user',
        mode: 0o644,
        content: '{"userName":"alice","uid":60514,"gid":60514,"homeDirectory":"/run/host/home/alice","service":"io.systemd.NSpawn"}\n',
      },
    ]);
  });
  it('has no privileged record without a hashed password, and counts up from 60514 past IDs the container uses', () => {
    const users = resolve(['bob', 'alice', 'bob'], tree('root:x:0:0::/root:/bin/sh\nx:x:60514:60514::/:/bin/sh\n', 'root:x:0:\ny:x:60515:\n'));
    expect(users.map((u) => [u.name, u.uid])).toEqual([
      ['bob', 60516],
      ['alice', 60517],
    ]);
    expect(users[0]!.records.map((r) => r.file)).toEqual(['bob.group', 'bob.user']);
  });
  it.each([
    [['carol'], "Failed to resolve user 'carol': No such process"],
    [['root'], "Mapping 'root' user not supported, sorry."],
    [['nobody'], "Mapping 'nobody' user not supported, sorry."],
    [['shared'], 'Sorry, mapping users without private groups is currently not supported.'],
    [['orphan'], "Failed to resolve group of user 'orphan': No such process"],
  ])('%j: %s', (names, msg) => expect(() => resolve(names)).toThrow(msg));
  it("refuses a user or group the container's /etc/passwd or /etc/group has", () => {
    expect(() => resolve(['alice'], tree('alice:x:5:5::/:/bin/sh\n'))).toThrow("Sorry, the user 'alice' already exists in the container.");
    expect(() => resolve(['alice'], tree(undefined, 'alice:x:7:\n'))).toThrow("Sorry, the group 'alice' already exists in the container.");
  });
  it("refuses a host user inside the container's range", () => {
    expect(() => resolve(['high'], tree(), 200000, 65536)).toThrow("UID of user 'high' to map is already in container UID range, refusing.");
    expect(() => resolve(['alice'], tree(), 0, 65536)).toThrow("UID of user 'alice' to map is already in container UID range, refusing.");
  });
  it('refuses when no UID in 60514…60577 is free', () => {
    const full = Array.from({ length: 64 }, (_, i) => `u${i}:x:${60514 + i}:0::/:/bin/sh`).join('\n');
    expect(() => resolve(['alice'], tree(full))).toThrow("No suitable available UID in range 60514…60577 in container detected, can't map user.");
  });
});

describe('the plan with bound users', () => {
  const users = resolve(['alice', 'bob']);
  it('makes /run/host/home and /run/host/userdb, the records with their links, and the homes\' mount points', () => {
    const ops = bindUserOps(users);
    expect(ops.slice(0, 2)).toEqual([
      { kind: 'mkdir', target: '/run/host/home', mode: 0o755 },
      { kind: 'mkdir', target: '/run/host/userdb', mode: 0o755 },
    ]);
    expect(ops).toContainEqual({ kind: 'symlink', source: 'alice.user', target: '/run/host/userdb/60514.user' });
    expect(ops).toContainEqual({ kind: 'write', target: '/run/host/userdb/alice.user-privileged', data: users[0]!.records[1]!.content, mode: 0o600 });
    expect(ops).toContainEqual({ kind: 'mkdir', target: '/run/host/home/bob', mode: 0o755 });
    expect(bindUserOps([])).toEqual([]);
  });
  it('maps each container ID to the host user', () => {
    expect(bindUserMaps(users)).toEqual([
      { uid: 60514, hostUid: 1000, gid: 60514, hostGid: 1000 },
      { uid: 60515, hostUid: 1001, gid: 60515, hostGid: 1001 },
    ]);
  });
  it('goes into the plan before /run/host is read-only, with the maps', () => {
    const plan = planContainer(baseConfig({ userns: { shift: 0x5e0000, range: 65536 }, bindUsers: users }), bareHost(), emptyTree(), { hex128: () => '0'.repeat(32) });
    const rec = plan.ops.findIndex((o) => o.target === '/run/host/userdb/alice.user');
    const ro = plan.ops.findIndex((o) => o.kind === 'remount' && o.target === '/run/host');
    expect(rec).toBeGreaterThan(0);
    expect(ro).toBeGreaterThan(rec);
    expect(plan.bindMaps).toEqual(bindUserMaps(users));
  });
});
