/**
 * Side by side with the real systemd-nspawn 252 (Debian): the same .nspawn file is given to it and to
 * parseNspawnFile()/mergeSettings(), and the line numbers systemd reports ("FILE:LINE: ...") must be exactly the
 * lines we flag, and for an untrusted file the "Ignoring ... not trusted." warnings must be exactly ours.
 *
 * Lines where systemd 252 and the systemd v259 grammar we implement disagree are marked with `differs`, saying
 * what each side does and why; everything else must match. Needs root and /usr/bin/systemd-nspawn (Debian's
 * systemd-container 252, which scripts/setup.sh --test installs) and fails without them; it builds its own busybox
 * tree (scripts/make-busybox-tree.sh, Debian's busybox-static) in /var/tmp/st-cmp-*, removed afterwards.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { referenceCommand } from '@nspawn/test-kit';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mergeSettings } from './merge.js';
import type { SettingKey } from './model.js';
import { parseNspawnFile } from './nspawn-file.js';

const NSPAWN = '/usr/bin/systemd-nspawn';
const MAKE_TREE = fileURLToPath(new URL('../../../scripts/make-busybox-tree.sh', import.meta.url));

interface Line {
  text: string;
  /** systemd 252 and our (v259) grammar disagree on this line, by design */
  differs?: { systemd252: boolean; ours: boolean; why: string };
}

const UNKNOWN_IN_252 = (key: string, version: number) => ({
  systemd252: true,
  ours: false,
  why: `${key}= was added in systemd v${version}; 252 reports an unknown key`,
});

/** A trusted file: harmless valid lines (they are applied) and invalid ones. */
const TRUSTED_LINES: Line[] = [
  { text: '# a comment' },
  { text: '; another comment' },
  { text: 'Hostname=outside-any-section' },
  { text: '[Exec]' },
  { text: 'Boot=maybe' },
  { text: 'ProcessTwo=yes' },
  { text: 'Boot=yes' },
  { text: 'Ephemeral=perhaps' },
  { text: 'Parameters=/bin/sh -c "echo hi"' },
  { text: 'Parameters="unbalanced' },
  { text: 'Environment=FOO=bar "BAZ=a b" \\' },
  { text: '  MORE=1' },
  { text: "Environment='oops" },
  { text: 'User=ro"ot' },
  { text: 'Capability=CAP_NET_RAW CAP_BOGUS' },
  { text: 'AmbientCapability=cap_chown' },
  { text: 'DropCapability=CAP_SYS_MODULE' },
  {
    text: 'DropCapability=63',
    differs: { systemd252: false, ours: true, why: 'capability numbers above 62 are refused since v254 (CAP_LIMIT)' },
  },
  // credentials have no .nspawn key in systemd (252 nor later): an unknown key, reported, like any other
  { text: 'SetCredential=a:b' },
  { text: 'LoadCredential=a:/etc/hostname' },
  { text: 'KillSignal=SIGTERM' },
  { text: 'KillSignal=SIGFOO' },
  { text: 'KillSignal=' },
  { text: 'Personality=x86-64' },
  { text: 'Personality=arm64' },
  { text: 'MachineID=0123456789abcdef0123456789abcdef' },
  { text: 'MachineID=xyz' },
  { text: 'MachineID=00000000-0000-0000-0000-000000000000' },
  { text: 'WorkingDirectory=/' },
  { text: 'WorkingDirectory=relative' },
  { text: 'WorkingDirectory=/a/../b' },
  { text: 'PivotRoot=relative' },
  { text: 'PrivateUsers=no' },
  { text: 'PrivateUsers=5:0' },
  { text: 'PrivateUsers=abc' },
  { text: 'PrivateUsers=' },
  { text: 'NotifyReady=no' },
  { text: 'NotifyReady=later' },
  { text: 'SystemCallFilter=foo\\ ' },
  { text: 'LimitNOFILE=1024:4096' },
  { text: 'LimitNOFILE=4096:1024' },
  { text: 'LimitCPU=1h' },
  { text: 'LimitCPU=forever' },
  { text: 'LimitNICE=+19' },
  { text: 'LimitNICE=41' },
  { text: 'LimitRTTIME=1x' },
  { text: 'LimitAS=1.5G' },
  { text: 'LimitCORE=' },
  { text: 'Hostname=my-host' },
  { text: 'Hostname=bad_host' },
  { text: 'NoNewPrivileges=yes' },
  { text: 'OOMScoreAdjust=100' },
  { text: 'OOMScoreAdjust=2000' },
  { text: 'OOMScoreAdjust=lots' },
  { text: 'CPUAffinity=0' },
  { text: 'ResolvConf=off' },
  { text: 'ResolvConf=sometimes' },
  { text: 'LinkJournal=no' },
  { text: 'LinkJournal=guest-ish' },
  { text: 'Timezone=off' },
  { text: 'Timezone=utc' },
  { text: 'SuppressSync=no' },
  { text: 'Foo=bar' },
  { text: 'X-Custom=ignored' },
  { text: 'NoEquals' },
  { text: '=value' },
  { text: '[Files]' },
  { text: 'ReadOnly=no' },
  { text: 'Volatile=no' },
  { text: 'Volatile=sometimes' },
  { text: 'Bind=relative-only' },
  { text: 'BindReadOnly=/usr:rel' },
  { text: 'Bind=/tmp:/mnt:norbind' },
  // (a bad option is read like a good one, by both: 252 refuses it only when it mounts; see below)
  { text: 'Bind=/tmp:/media:bogus' },
  { text: 'TemporaryFileSystem=/run/extra:mode=0700' },
  { text: 'TemporaryFileSystem=relative' },
  { text: 'Inaccessible=/proc/kcore' },
  { text: 'Inaccessible=relative' },
  { text: 'Overlay=/only-one' },
  { text: 'OverlayReadOnly=/a:/b:relative' },
  { text: 'PrivateUsersChown=maybe' },
  { text: 'PrivateUsersOwnership=off' },
  // upstream v252 refuses booleans here; Debian's 252 (like v257+) takes yes = auto
  { text: 'PrivateUsersOwnership=yes' },
  { text: 'BindUser=9bad' },
  { text: 'BindUserShell=/bin/sh', differs: UNKNOWN_IN_252('BindUserShell', 258) },
  { text: '[Network]' },
  { text: 'Private=no' },
  { text: 'NamespacePath=/run/netns/x', differs: UNKNOWN_IN_252('NamespacePath', 259) },
  { text: 'VirtualEthernet=perhaps' },
  { text: 'VirtualEthernetExtra=a:b:c' },
  { text: 'Bridge=this-name-is-way-too-long' },
  { text: 'Zone=this-zone-name-is-too-long' },
  { text: 'Port=tcp:8080:80' },
  { text: 'Port=99999' },
  { text: 'Port=080' },
  { text: 'Port=0x1f90' },
  { text: '[Bogus]' },
  { text: 'Key=ignored-in-unknown-section' },
  { text: '[X-Extension]' },
  { text: 'Key=ignored' },
  { text: '[Exec]' },
  { text: 'Environment="trailing \\' },
];

/** An untrusted file: privileged settings (reported as ignored), a few plain ones and some invalid lines. */
const UNTRUSTED_LINES: Line[] = [
  { text: '[Exec]' },
  { text: 'Hostname=plain-host' },
  { text: 'Environment=A=1' },
  { text: 'Capability=CAP_NET_ADMIN' },
  { text: 'AmbientCapability=CAP_CHOWN' },
  { text: 'DropCapability=CAP_MKNOD' },
  { text: 'MachineID=0123456789abcdef0123456789abcdef' },
  { text: 'PrivateUsers=pick' },
  { text: 'SystemCallFilter=@basic-io' },
  { text: 'SystemCallFilter=~@obsolete' },
  { text: 'LimitNOFILE=1024' },
  { text: 'LimitCPU=10' },
  { text: 'LimitRTTIME=bad' },
  { text: 'OOMScoreAdjust=100' },
  { text: 'CPUAffinity=0-1' },
  { text: 'LinkJournal=try-guest' },
  { text: 'Boot=sure' },
  { text: '[Files]' },
  { text: 'Bind=/tmp:/mnt' },
  { text: 'TemporaryFileSystem=/run/x' },
  { text: 'Inaccessible=relative' },
  { text: 'BindUser=someone' },
  { text: '[Network]' },
  { text: 'Private=yes' },
  { text: 'Port=tcp:8080:80' },
  { text: 'Port=none' },
];

interface Run {
  lines: Set<number>;
  ignoring: string[];
  stderr: string;
}

function runNspawn(dir: string, machine: string, path: string): Run {
  // (in a cgroup of the test's own: 252 --keep-unit makes payload/ and supervisor/ in its caller's cgroup)
  const r = spawnSync(...referenceCommand(['--register=no', '--keep-unit', '-q', '-D', dir, '-M', machine, '/bin/true']), {
    encoding: 'utf8',
    timeout: 60_000,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stderr = r.stderr ?? '';
  const lines = new Set<number>();
  const ignoring: string[] = [];
  for (const l of stderr.split('\n')) {
    const m = l.startsWith(path) ? /^:(\d+): /.exec(l.slice(path.length)) : null;
    if (m) lines.add(Number(m[1]));
    else if (/^Ignoring .* is not trusted\.$/.test(l)) ignoring.push(l);
  }
  return { lines, ignoring, stderr };
}

function expectations(lines: Line[], ours: Set<number>) {
  const ourLines = new Set<number>();
  const systemdLines = new Set<number>();
  const notes: string[] = [];
  for (const n of ours) {
    ourLines.add(n);
    systemdLines.add(n);
  }
  lines.forEach((l, i) => {
    if (!l.differs) return;
    const n = i + 1;
    notes.push(`line ${n} (${l.text}): ${l.differs.why}`);
    expect(ours.has(n), `we ${l.differs.ours ? 'flag' : 'accept'} line ${n}: ${l.text}`).toBe(l.differs.ours);
    if (l.differs.systemd252) systemdLines.add(n);
    else systemdLines.delete(n);
  });
  return { systemdLines, notes };
}

const sorted = (s: Set<number>) => [...s].sort((a, b) => a - b);

describe('side by side with systemd-nspawn 252', () => {
  /** the busybox tree (made once) and the directory of everything this file makes */
  let top = '';
  let tree = '';
  beforeAll(() => {
    // (spawnSync, not execa: the tests below are synchronous, systemd-nspawn runs to completion in each)
    expect(process.getuid?.(), 'needs root to run systemd-nspawn').toBe(0);
    expect(existsSync(NSPAWN), `needs ${NSPAWN} (Debian: apt-get install systemd-container; scripts/setup.sh --test)`).toBe(true);
    top = mkdtempSync('/var/tmp/st-cmp-');
    tree = join(top, 'tree');
    execFileSync(MAKE_TREE, [tree], { stdio: ['ignore', 'ignore', 'pipe'] });
  }, 120_000);
  afterAll(() => {
    if (top) rmSync(top, { recursive: true, force: true });
  });

  const cleanups: Array<() => void> = [];
  afterEach(() => {
    for (const c of cleanups.splice(0).reverse()) {
      try {
        c();
      } catch {
        // keep cleaning up the rest
      }
    }
  });

  /** A copy of the busybox tree in a fresh temporary directory, removed after the test. */
  function makeMachine(): { base: string; dir: string; name: string } {
    const base = mkdtempSync(join(top, 'st-'));
    cleanups.push(() => rmSync(base, { recursive: true, force: true }));
    const name = `st-cmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    const dir = join(base, name);
    const cp = spawnSync('cp', ['-a', tree, dir], { encoding: 'utf8' });
    if (cp.status !== 0) throw new Error(`cp -a ${tree} failed: ${cp.stderr}`);
    // systemd-nspawn leaves a propagation directory named after the machine behind
    for (const d of ['/run/systemd/nspawn/propagate', '/run/systemd/nspawn/locks'])
      cleanups.push(() => existsSync(join(d, name)) && rmSync(join(d, name), { recursive: true, force: true }));
    return { base, dir, name };
  }

  /** mkdir -p that removes what it created, with whatever systemd-nspawn put inside (locks/, propagate/). */
  function ensureDir(path: string): void {
    const missing: string[] = [];
    for (let p = path; p !== '/' && !existsSync(p); p = join(p, '..')) missing.unshift(p);
    if (missing.length > 0) cleanups.push(() => rmSync(missing[0]!, { recursive: true, force: true }));
    for (const p of missing) mkdirSync(p);
  }

  it('flags the same lines of a trusted file in /run/systemd/nspawn', { timeout: 120_000 }, () => {
    const { dir, name } = makeMachine();
    ensureDir('/run/systemd/nspawn');
    const path = `/run/systemd/nspawn/${name}.nspawn`;
    const text = TRUSTED_LINES.map((l) => l.text).join('\n') + '\n';
    cleanups.push(() => rmSync(path, { force: true }));
    writeFileSync(path, text);

    const systemd = runNspawn(dir, name, path);
    const ours = parseNspawnFile(text, { path });
    expect(ours.fatal).toBe(false);
    const { systemdLines, notes } = expectations(TRUSTED_LINES, new Set(ours.diagnostics.map((d) => d.line!)));
    expect(sorted(systemd.lines), `systemd said:\n${systemd.stderr}\nknown differences:\n${notes.join('\n')}`).toEqual(
      sorted(systemdLines),
    );
    expect(systemd.ignoring).toEqual([]);
  });

  it('refuses the whole file for the same errors (the rest of the file unread), and only for those', { timeout: 180_000 }, () => {
    const { dir, name } = makeMachine();
    ensureDir('/run/systemd/nspawn');
    const path = `/run/systemd/nspawn/${name}.nspawn`;
    cleanups.push(() => rmSync(path, { force: true }));
    // each case: a bad line 2, then a line that is flagged when it is read (line 4): read only when the file goes on
    const cases: Array<{ line: string | Uint8Array; fatal: boolean }> = [
      // parse_cpu_set_extend(): a word that is no CPU or range, or a CPU past the set, fails the file
      { line: 'CPUAffinity=x', fatal: true },
      { line: 'CPUAffinity=0 1 x', fatal: true },
      { line: 'CPUAffinity=8192', fatal: true },
      { line: 'CPUAffinity="0', fatal: true },
      // ... a range the wrong way round is a warning
      { line: 'CPUAffinity=3-1', fatal: false },
      // config_parse_strv(): any word is an interface name when the file is read
      { line: 'Interface=a/b', fatal: false },
      { line: 'MACVLAN=all', fatal: false },
      { line: 'IPVLAN=eth0\\ ', fatal: false },
      // the section header and UTF-8 (parse_line())
      { line: '[Exec', fatal: true },
      { line: '[Ex"ec]', fatal: true },
      { line: Buffer.from([0x48, 0x6f, 0x73, 0x74, 0x6e, 0x61, 0x6d, 0x65, 0x3d, 0xff]), fatal: true },
      // values that are ignored with a warning, however bad
      { line: 'Boot=maybe', fatal: false },
      { line: 'Bind=/tmp:/mnt:bogus', fatal: false },
      { line: 'PrivateUsers=abc', fatal: false },
      { line: 'LimitNOFILE=4096:1024', fatal: false },
    ];
    for (const c of cases) {
      const text = Buffer.concat([Buffer.from('[Exec]\n'), Buffer.from(c.line), Buffer.from('\n[Exec]\nKillSignal=SIGFOO\n')]);
      writeFileSync(path, text);
      const systemd = runNspawn(dir, name, path);
      const ours = parseNspawnFile(text, { path });
      const what = String(c.line);
      expect(systemd.stderr.includes(`${path}:2: Failed to parse file:`), `252 on ${what}:\n${systemd.stderr}`).toBe(c.fatal);
      expect(ours.fatal, what).toBe(c.fatal);
      // a refused file is read no further (line 4 unflagged), a file that goes on flags line 4 on both sides
      expect(systemd.lines.has(4), `252 on ${what}`).toBe(!c.fatal);
      expect(ours.diagnostics.some((d) => d.line === 4), what).toBe(!c.fatal);
      expect(sorted(systemd.lines), `252 on ${what}:\n${systemd.stderr}`).toEqual(sorted(new Set(ours.diagnostics.map((d) => d.line!))));
    }
  });

  it('flags the same lines of an untrusted file next to the image and ignores the same settings', { timeout: 120_000 }, () => {
    const { base, dir, name } = makeMachine();
    const path = join(base, `${name}.nspawn`);
    const text = UNTRUSTED_LINES.map((l) => l.text).join('\n') + '\n';
    writeFileSync(path, text);

    const systemd = runNspawn(dir, name, path);
    const ours = parseNspawnFile(text, { path });
    const { systemdLines } = expectations(UNTRUSTED_LINES, new Set(ours.diagnostics.map((d) => d.line!)));
    expect(sorted(systemd.lines), systemd.stderr).toEqual(sorted(systemdLines));

    // the command line: -D (directory) and a command (start mode); the file is untrusted
    const set = new Set<SettingKey>(['directory', 'start-mode']);
    const merged = mergeSettings(
      { settings: { directory: dir, parameters: ['/bin/true'] }, set },
      { settings: ours.settings, trusted: false, mode: 'yes', path },
    );
    expect(merged.warnings, systemd.stderr).toEqual(systemd.ignoring);
    expect(merged.warnings.length).toBeGreaterThan(5);
    expect(merged.settings.hostname).toBe('plain-host');
  });
});
