/**
 * --bind-user= side by side with systemd-nspawn 252 (nspawn-bind-user.c, make_uid_map_string()). Both tools run in a
 * mount namespace of the test's own where /etc/passwd, /etc/group and /etc/shadow are copies of the host's with test
 * users added (so the host's databases are never touched), with -U, on the same busybox tree. What the container sees
 * must match: /run/host/userdb (names, modes, owners, link targets, the JSON records byte for byte), the home at
 * /run/host/home/USER (its mount, owned by container UID 60514), the user namespace's maps (the range split around
 * the bound user; the range's base made generic); and every refusal has 252's words.
 *
 * Needs root and /usr/bin/systemd-nspawn; it fails, never skips, without them.
 */
import { execa } from 'execa';
import { chownSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxTree } from './helpers/busybox-tree.js';
import { COMMON_FLAGS, makeTempDir, requireRootAndSystemdNspawn, type Tool, TOOL_ENV, toolCommand, TOOLS } from './helpers/containers.js';

const PROBE = [
  'cd /run/host/userdb && for f in *; do echo "$f $(stat -c "%a %u %g %F" "$f") $(readlink "$f")"; done',
  'for f in /run/host/userdb/*; do echo "== $f"; cat "$f"; done',
  'echo "-- maps"; cat /proc/self/uid_map /proc/self/gid_map',
  "echo \"-- home\"; grep ' /run/host/home/' /proc/self/mountinfo | head -n 1 | cut -d' ' -f4,5,6",
  'stat -c "%n %u %g %a" /run/host/home /run/host/home/* /run/host/home/*/marker',
].join('\n');

let tmp: { dir: string; remove: () => string[] };
let tree: string;
let db: { passwd: string; group: string; shadow: string };

beforeAll(() => {
  requireRootAndSystemdNspawn();
  tmp = makeTempDir('pk-binduser-');
  tree = makeBusyboxTree(join(tmp.dir, 'tree'), { probe: false });
  for (const [name, id] of [['pkbinda', 4711], ['pkbindb', 4712]] as const) {
    const home = join(tmp.dir, 'home', name);
    mkdirSync(home, { recursive: true });
    writeFileSync(join(home, 'marker'), `${name}\n`);
    chownSync(home, id, id);
    chownSync(join(home, 'marker'), id, id);
  }
  const add = (file: string, lines: string[]) => {
    const p = join(tmp.dir, file.slice(5));
    copyFileSync(file, p);
    writeFileSync(p, `${readFileSync(p, 'utf8').replace(/\n?$/, '\n')}${lines.join('\n')}\n`);
    return p;
  };
  db = {
    passwd: add('/etc/passwd', [
      `pkbinda:x:4711:4711:Test A:${tmp.dir}/home/pkbinda:/bin/sh`,
      `pkbindb:x:4712:4712::${tmp.dir}/home/pkbindb:/bin/sh`,
      `pkbindc:x:4713:100::${tmp.dir}/home/pkbindb:/bin/sh`,
      `pkbindd:x:4714:4714::${tmp.dir}/home/missing:/bin/sh`,
    ]),
    group: add('/etc/group', ['pkbinda:x:4711:', 'pkbindb:x:4712:', 'pkbindd:x:4714:']),
    shadow: add('/etc/shadow', ['pkbinda:$6$pksalt$pkhash:19000:0:99999:7:::', 'pkbindb:!:19000::::::']),
  };
});
afterAll(() => {
  expect(tmp.remove()).toEqual([]);
});

interface Seen {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** TOOL with ARGS in a mount namespace of its own where the host's user databases are the test's copies. */
async function run(tool: Tool, args: string[], dir = tree): Promise<Seen> {
  const cmd = toolCommand(tool).flat();
  const r = await execa(
    'unshare',
    [
      '-m',
      '--propagation',
      'private',
      '--',
      'sh',
      '-c',
      'mount --bind "$1" /etc/passwd && mount --bind "$2" /etc/group && mount --bind "$3" /etc/shadow && shift 3 && exec "$@"',
      'sh',
      db.passwd,
      db.group,
      db.shadow,
      ...cmd,
      ...COMMON_FLAGS,
      '-q',
      // a machine name of our own: trees named "tree" are common, and a name's scope is taken while it runs
      '-M',
      'pk-binduser',
      '-D',
      dir,
      ...args,
      '/bin/sh',
      '-c',
      PROBE,
    ],
    { input: '', env: TOOL_ENV, extendEnv: false, timeout: 30000, killSignal: 'SIGKILL', reject: false, stripFinalNewline: false },
  );
  return {
    status: r.exitCode ?? null,
    // the range's base differs between runs: made generic (the first line of each map gives it)
    stdout: String(r.stdout)
      .replace(/\r\n/g, '\n')
      .replace(/^( *\d+ +)(\d+)( +\d+)$/gm, (line, a: string, host: string, c: string) => {
        const base = /^ *0 +(\d+) /m.exec(String(r.stdout))?.[1];
        return base !== undefined && Number(host) >= Number(base) ? `${a}BASE+${Number(host) - Number(base)}${c}` : line;
      }),
    stderr: String(r.stderr)
      .split('\n')
      .filter((l) => l !== '' && !l.startsWith('Attempted to remove disk file system') && !l.startsWith('Short read while reading cgroup mode'))
      .join('\n'),
  };
}

async function both(args: string[], dir?: string): Promise<Record<Tool, Seen>> {
  const seen = {} as Record<Tool, Seen>;
  for (const tool of TOOLS) seen[tool] = await run(tool, args, dir);
  return seen;
}

describe('--bind-user= as systemd-nspawn 252', () => {
  it('the test can fail: -U alone has no user records, no homes and one map line', async () => {
    const s = await run('nspawn', ['-U']);
    expect(s.stderr).toBe('');
    expect(s.stdout).toContain("can't cd to /run/host/userdb");
    expect(s.stdout).toMatch(/-- maps\n +0 +BASE\+0 +65536\n +0 +BASE\+0 +65536\n/);
  });

  it('one user: records, links, home and maps as 252 makes them', async () => {
    const seen = await both(['-U', '--bind-user=pkbinda']);
    expect(seen['systemd-nspawn'].status, seen['systemd-nspawn'].stderr).toBe(0);
    expect(seen.nspawn).toEqual(seen['systemd-nspawn']);
    const out = seen.nspawn.stdout;
    expect(out).toContain('pkbinda.user-privileged 600 0 0 regular file \n');
    expect(out).toContain('60514.user 777 0 0 symbolic link pkbinda.user\n');
    expect(out).toContain('{"userName":"pkbinda","uid":60514,"gid":60514,"homeDirectory":"/run/host/home/pkbinda","service":"io.systemd.NSpawn"}\n');
    expect(out).toContain('{"privileged":{"hashedPassword":["$6$pksalt$pkhash"]}}\n');
    expect(out).toMatch(/ +60514 +4711 +1\n/);
    expect(out).toContain('/run/host/home/pkbinda/marker 60514 60514 644\n');
  });

  it('two users (one given twice, one with a locked password) get 60514 and 60515', async () => {
    const seen = await both(['-U', '--bind-user=pkbindb', '--bind-user=pkbinda', '--bind-user=pkbindb']);
    expect(seen['systemd-nspawn'].status, seen['systemd-nspawn'].stderr).toBe(0);
    expect(seen.nspawn).toEqual(seen['systemd-nspawn']);
    expect(seen.nspawn.stdout).toContain('60514.user 777 0 0 symbolic link pkbindb.user\n');
    expect(seen.nspawn.stdout).toContain('60515.user 777 0 0 symbolic link pkbinda.user\n');
    expect(seen.nspawn.stdout).toContain('{"privileged":{"hashedPassword":["!"]}}\n');
  });

  it('a tree whose /etc/passwd has the user, or uses 60514: refused, or the next UID', async () => {
    const taken = join(tmp.dir, 'taken');
    makeBusyboxTree(taken, { probe: false });
    writeFileSync(join(taken, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nother:x:60514:60514::/:/bin/sh\n');
    const next = await both(['-U', '--bind-user=pkbinda'], taken);
    expect(next['systemd-nspawn'].status, next['systemd-nspawn'].stderr).toBe(0);
    expect(next.nspawn).toEqual(next['systemd-nspawn']);
    expect(next.nspawn.stdout).toContain('60515.user ');
    writeFileSync(join(taken, 'etc/group'), 'root:x:0:\npkbinda:x:99:\n');
    const refused = await both(['-U', '--bind-user=pkbinda'], taken);
    expect(refused.nspawn.status).toBe(1);
    expect(refused['systemd-nspawn'].status).toBe(1);
    expect(refused.nspawn.stderr.split('\n')[0]).toBe("Sorry, the group 'pkbinda' already exists in the container.");
    expect(refused.nspawn.stderr.split('\n')[0]).toBe(refused['systemd-nspawn'].stderr.split('\n')[0]);
  });

  it.each([
    [['--bind-user=pkbinda'], '--bind-user= requires --private-users'],
    [['-U', '--bind-user=pknosuch'], "Failed to resolve user 'pknosuch': No such process"],
    [['-U', '--bind-user=root'], "Mapping 'root' user not supported, sorry."],
    [['-U', '--bind-user=nobody'], "Mapping 'nobody' user not supported, sorry."],
    [['-U', '--bind-user=pkbindc'], 'Sorry, mapping users without private groups is currently not supported.'],
  ])('%j is refused with 252\'s words', async (args, words) => {
    const seen = await both(args);
    expect(seen['systemd-nspawn'].status).toBe(1);
    expect(seen.nspawn.status).toBe(1);
    expect(seen['systemd-nspawn'].stderr.split('\n')[0]).toBe(words);
    expect(seen.nspawn.stderr.split('\n')[0]).toBe(words);
  });

  it('a user whose home is missing: the bind mount fails alike', async () => {
    const seen = await both(['-U', '--bind-user=pkbindd']);
    expect(seen['systemd-nspawn'].status).toBe(1);
    expect(seen.nspawn.status).toBe(1);
    const first = (s: Seen) => s.stderr.split('\n')[0]!.replace(/ \([A-Z]+\)$/, '');
    expect(first(seen['systemd-nspawn'])).toBe(`Failed to stat ${tmp.dir}/home/missing: No such file or directory`);
    expect(first(seen.nspawn)).toBe(first(seen['systemd-nspawn']));
  });

  it('a user inside a range given by hand: our own earlier refusal of a range holding host users (252 has none)', async () => {
    const seen = await both(['--private-users=4096:4096', '--bind-user=pkbinda']);
    expect(seen['systemd-nspawn'].status).toBe(1);
    expect(seen['systemd-nspawn'].stderr.split('\n')[0]).toBe("UID of user 'pkbinda' to map is already in container UID range, refusing.");
    expect(seen.nspawn.status).toBe(1);
    expect(seen.nspawn.stderr.split('\n')[0]).toBe(
      "UID range 4096:4096 (--private-users=) overlaps the host's users: ID 4711 is in /etc/passwd or /etc/group. Refusing.",
    );
  });
});
