/**
 * The journal of a booted Debian 12 container on a real systemd host (tools/systemd-host: Debian 12 booted under
 * systemd-nspawn, systemd 252 as PID 1, machined), as root, side by side with systemd-nspawn 252 in the same host
 * (issue 18 item 6): for each --link-journal= mode, our nspawn -b and systemd-nspawn -b each boot a copy of the
 * Debian tree (systemd, dbus; a machine ID of its own in /etc/machine-id, a persistent journal), a line is logged
 * inside each (systemd-cat), and the host must show it for both alike:
 *  - `journalctl -M NAME` (machined's OpenMachineRootDirectory: the container's /var/log/journal and /run/log/journal);
 *  - `journalctl -m` and `journalctl -D /var/log/journal/ID` (the host's side of --link-journal=: a symlink into the
 *    tree with guest/try-guest, a directory of the host's bound into the container with host and with auto when the
 *    host has one).
 * Also -U (an idmapped root: what nspawn makes in the tree must belong to the container's root as the disk sees it,
 * or its journald cannot write there), nspawn@.service from `nspawnctl install-units` against 252's
 * systemd-nspawn@.service, and -x (no link at all). One host for the whole file; every machine ends after each test.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { addDebianTree, bootSystemdHost, INNER_TREE, REPO, type SystemdHost } from '@nspawn/systemd-host';
import { inHost, sleep, type Started, within } from './helpers/in-host.js';

const NSPAWN = join(REPO, 'apps/cli/bin/nspawn');
const NSPAWNCTL = join(REPO, 'apps/cli/bin/nspawnctl');
const ENV = { NSPAWN_NETWORK_AUTO: '0', NSPAWN_CODE_CACHE: '0' };
let host: SystemdHost;
const h = inHost(() => host);
const { machines } = h;
const units: string[] = [];

beforeAll(async () => {
  host = await bootSystemdHost({ name: 'mh-journal', log: (l) => console.log(l) });
});
afterAll(async () => {
  h.killStarted();
  await host?.shutdown();
});
// a failed test must not leave its machines to the next one
afterEach(async () => {
  if (!host) return;
  for (const u of units.splice(0)) await host.exec(['systemctl', 'kill', '--signal=SIGKILL', u]);
  await h.endAll(200);
});

const newId = () => randomBytes(16).toString('hex');

/** a start inside the host, as a process of its systemd (a transient scope), with its output and end */
const start = (argv: string[], env?: Record<string, string>): Started => h.start(argv, env ? { env } : {});

/** polls F (every 200 ms, at most MS) until it gives something truthy; the last value */
async function until<T>(f: () => Promise<T>, ms = 60_000): Promise<T> {
  let v = await f();
  for (const end = Date.now() + ms; !v && Date.now() < end; ) {
    await sleep(200);
    v = await f();
  }
  return v;
}
/** `journalctl ARGS -o cat` inside the host (empty when it fails) */
const journal = async (...args: string[]) => (await host.exec(['journalctl', '--no-pager', '-q', '-o', 'cat', ...args])).stdout;

interface Side {
  name: string;
  /** the tree inside the host */
  tree: string;
  /** its machine ID */
  id: string;
  run?: Started;
  /** a line logged inside, once booted */
  token?: string;
}

/**
 * The Debian tree at /var/lib/machines/NAME (NAME is also the machine's name), copied into the host once for the
 * file (ours and 252's each have one: 252 locks the tree it runs), with a new machine ID for each test: a journal
 * directory of its own on both sides, none of an earlier test's in the way.
 */
const trees = new Set<string>();
async function debian(name: string, opts: { emptyMachineId?: boolean } = {}): Promise<Side> {
  // an empty /etc/machine-id: the ID is the UUID the tool picks (known once it has registered)
  const id = opts.emptyMachineId ? '' : newId();
  const tree = `/var/lib/machines/${name}`;
  if (!trees.has(name)) {
    await addDebianTree(host, name, { machineId: newId() });
    trees.add(name);
  }
  await host.run(['sh', '-c', id ? `printf '%s\\n' ${id} > ${tree}/etc/machine-id` : `: > ${tree}/etc/machine-id`]);
  return { name, id, tree };
}

/** waits until NAME has booted (its journal, read through machined, says so), then logs a line inside it */
async function bootedAndMarked(side: Side): Promise<void> {
  const out = () => side.run?.output() ?? '';
  if (!side.id) {
    // the container's UUID, as machined has it (Id=, 32 hex digits)
    side.id = await until(async () => (await host.exec(['machinectl', 'show', '-p', 'Id', '--value', side.name])).stdout.trim(), 30_000);
    expect(side.id, `${side.name} did not register:\n${out()}`).toMatch(/^[0-9a-f]{32}$/);
  }
  // this boot's line, by the machine ID the test gave the tree: the tree keeps earlier tests' journals (other IDs), and
  // while our nspawn's leader is registered but not yet in its root, machined opens the host's root for -M, whose
  // journal has a "Startup finished" of its own (FACTS-systemd-host.md)
  const booted = await until(async () => /Startup finished/.test(await journal('-M', side.name, `_MACHINE_ID=${side.id}`)));
  expect(booted, `${side.name} did not finish booting:\n${out()}\n${await journal('-M', side.name)}`).toBe(true);
  const leader = (await host.run(['machinectl', 'show', '-p', 'Leader', '--value', side.name])).trim();
  side.token = `mh-journal-mark ${side.name} ${randomBytes(6).toString('hex')}`;
  // into all its namespaces (its user namespace too, with -U): the line goes to the container's journald
  const r = await host.exec(['nsenter', '-t', leader, '-a', '--', 'systemd-cat', '-t', 'mh-mark', 'echo', side.token]);
  if (r.code !== 0) {
    const diag = await host.exec(['sh', '-c', `cat /proc/${leader}/comm; nsenter -t ${leader} -a -- ls -la /run/systemd/journal; machinectl show ${side.name}; journalctl -M ${side.name} --list-boots --no-pager; journalctl -M ${side.name} -o short-monotonic --no-pager | tail -60`]);
    expect.fail(`systemd-cat in ${side.name} (leader ${leader}): ${r.stderr}\n${diag.stdout}${diag.stderr}\n${out()}`);
  }
}

/** ours and 252's, each on its tree with ARGS, booted and marked */
async function bootBoth(ours: Side, ref: Side, args: string[]): Promise<void> {
  ours.run = start(['node', NSPAWN, '-q', '-b', '--console=read-only', ...args, '-D', ours.tree, '-M', ours.name], ENV);
  ref.run = start(['systemd-nspawn', '-q', '-b', '--console=read-only', ...args, '-D', ref.tree, '-M', ref.name]);
  await Promise.all([bootedAndMarked(ours), bootedAndMarked(ref)]);
}

/** the token reaches `journalctl ARGS` (polled: journald writes at once, but give it a moment) */
async function shows(side: Side, ...args: string[]): Promise<void> {
  const seen = await until(async () => (await journal(...args)).includes(side.token!), 10_000);
  expect(seen, `journalctl ${args.join(' ')} does not show ${side.name}'s line:\n${(await journal(...args)).split('\n').slice(-15).join('\n')}`).toBe(true);
}

/** -M NAME, -m, and -D on the host's /var/log/journal/ID: the container's line is there */
async function visibleEverywhere(side: Side): Promise<void> {
  await shows(side, '-M', side.name);
  await shows(side, '-m', '-t', 'mh-mark');
  await shows(side, '-D', `/var/log/journal/${side.id}`);
}

/** machinectl poweroff, and both ends with 0, and are gone from machined */
async function powerOff(...sides: Side[]): Promise<void> {
  for (const s of sides) await host.run(['machinectl', 'poweroff', s.name]);
  for (const s of sides) expect(await within(60_000, s.run!.exited), s.run!.output()).toBe(0);
  expect(await until(async () => (await machines()) === '', 10_000)).toBe(true);
}

const kind = async (path: string) => (await host.run(['stat', '-c', '%F', path])).trim();
const owner = async (path: string) => (await host.run(['stat', '-c', '%u:%g', path])).trim();
const exists = async (path: string) => (await host.exec(['test', '-e', path])).code === 0;
/** the container's mount points (its leader's mountinfo, as the host reads it) */
const mountsOf = async (name: string) => {
  const leader = (await host.run(['machinectl', 'show', '-p', 'Leader', '--value', name])).trim();
  return (await host.run(['cat', `/proc/${leader}/mountinfo`])).split('\n').map((l) => l.split(' ')[4] ?? '');
};

describe('the journal of a booted Debian container on a systemd host, as systemd-nspawn 252 links it', () => {
  it('--link-journal=try-guest (nspawn@.service\'s mode): a symlink in the host\'s /var/log/journal; -M, -m and -D show the container\'s lines', { timeout: 180_000 }, async () => {
    const ours = await debian('mh-jours');
    const ref = await debian('mh-jref');
    await bootBoth(ours, ref, ['--link-journal=try-guest']);
    for (const s of [ours, ref]) {
      // the host's side: /var/log/journal/ID -> the tree's /var/log/journal/ID, where the container's journald writes
      expect(await host.run(['readlink', `/var/log/journal/${s.id}`])).toBe(`${s.tree}/var/log/journal/${s.id}\n`);
      expect(await exists(`${s.tree}/var/log/journal/${s.id}/system.journal`)).toBe(true);
      await visibleEverywhere(s);
    }
    await powerOff(ours, ref);
    // neither removes the link at the end (252 has no cleanup for it): the tree's journal stays readable from the host
    for (const s of [ours, ref]) {
      expect(await kind(`/var/log/journal/${s.id}`)).toBe('symbolic link');
      await shows(s, '-D', `/var/log/journal/${s.id}`);
    }
  });

  it('--link-journal=host, and auto where the host has the directory: the host\'s directory bound into the container', { timeout: 240_000 }, async () => {
    for (const [mode, args] of [['host', ['--link-journal=host']], ['auto', []]] as const) {
      const ours = await debian('mh-jours');
      const ref = await debian('mh-jref');
      // auto links only to a directory the host has already
      if (mode === 'auto') for (const s of [ours, ref]) await host.run(['mkdir', `/var/log/journal/${s.id}`]);
      await bootBoth(ours, ref, [...args]);
      for (const s of [ours, ref]) {
        expect(await kind(`/var/log/journal/${s.id}`), `${mode} ${s.name}`).toBe('directory');
        // the container's journald writes into the host's directory, bound at the same path in the container
        expect(await exists(`/var/log/journal/${s.id}/system.journal`), `${mode} ${s.name}`).toBe(true);
        expect(await mountsOf(s.name)).toContain(`/var/log/journal/${s.id}`);
        await visibleEverywhere(s);
      }
      await powerOff(ours, ref);
    }
  });

  it('an empty /etc/machine-id: the UUID the tool picks names the link, and systemd inside commits it to the tree', { timeout: 180_000 }, async () => {
    const ours = await debian('mh-jours', { emptyMachineId: true });
    const ref = await debian('mh-jref', { emptyMachineId: true });
    await bootBoth(ours, ref, ['--link-journal=try-guest']);
    for (const s of [ours, ref]) {
      // "Initializing machine ID from container UUID.", then systemd-machine-id-commit.service writes it to the tree
      expect(await until(async () => (await host.run(['cat', `${s.tree}/etc/machine-id`])).trim() === s.id, 10_000), s.name).toBe(true);
      expect(await host.run(['readlink', `/var/log/journal/${s.id}`])).toBe(`${s.tree}/var/log/journal/${s.id}\n`);
      await visibleEverywhere(s);
    }
    await powerOff(ours, ref);
  });

  it('-U --link-journal=guest: the journal directory made in the idmapped tree is the container root\'s, so its journald writes there', { timeout: 180_000 }, async () => {
    const ours = await debian('mh-jours');
    const ref = await debian('mh-jref');
    await bootBoth(ours, ref, ['-U', '--link-journal=guest']);
    for (const s of [ours, ref]) {
      expect(await host.run(['readlink', `/var/log/journal/${s.id}`])).toBe(`${s.tree}/var/log/journal/${s.id}\n`);
      // a persistent journal in the tree (not the volatile fallback in /run/log/journal)
      expect(await exists(`${s.tree}/var/log/journal/${s.id}/system.journal`), s.name).toBe(true);
      await visibleEverywhere(s);
    }
    // the same owner on the disk as 252's (root through the idmapped mount: 0)
    expect(await owner(`${ours.tree}/var/log/journal/${ours.id}`)).toBe(await owner(`${ref.tree}/var/log/journal/${ref.id}`));
    expect((await owner(`${ours.tree}/var/log/journal/${ours.id}`)).split(':')[0]).toBe('0');
    await powerOff(ours, ref);
  });

  it('-U --link-journal=host: the host\'s directory is root\'s, unmapped in the container: both journals stay volatile, -M still shows them', { timeout: 180_000 }, async () => {
    // systemd-nspawn 252's limitation, kept: mkdir(p) on the host gives no chown to the range
    const ours = await debian('mh-jours');
    const ref = await debian('mh-jref');
    await bootBoth(ours, ref, ['-U', '--link-journal=host']);
    for (const s of [ours, ref]) {
      expect(await kind(`/var/log/journal/${s.id}`)).toBe('directory');
      expect(await exists(`/var/log/journal/${s.id}/system.journal`), s.name).toBe(false);
      await shows(s, '-M', s.name);
    }
    await powerOff(ours, ref);
  });

  it('nspawn@.service (nspawnctl install-units) and 252\'s systemd-nspawn@.service: -U, try-guest; journalctl -M and -D', { timeout: 180_000 }, async () => {
    const inst = await host.exec([NSPAWNCTL, 'install-units'], { env: { NSPAWN_CODE_CACHE: '0' } });
    expect(inst.code, inst.stderr).toBe(0);
    const ours = await debian('mh-jours');
    const ref = await debian('mh-jref');
    units.push('nspawn@mh-jours.service', 'systemd-nspawn@mh-jref.service');
    const unitLog = async (u: string) => (await host.exec(['journalctl', '--no-pager', '-n', '30', '-u', u])).stdout;
    for (const u of units) {
      const r = await host.exec(['systemctl', 'start', u], { timeoutMs: 90_000 });
      expect(r.code, `${r.stderr}\n${await unitLog(u)}`).toBe(0);
    }
    await Promise.all([bootedAndMarked(ours), bootedAndMarked(ref)]);
    for (const s of [ours, ref]) {
      expect(await host.run(['readlink', `/var/log/journal/${s.id}`])).toBe(`${s.tree}/var/log/journal/${s.id}\n`);
      expect(await exists(`${s.tree}/var/log/journal/${s.id}/system.journal`), s.name).toBe(true);
      await visibleEverywhere(s);
    }
    // systemctl stop: SIGRTMIN+3 to the container's systemd, which halts; the unit ends inactive
    for (const u of units) await host.run(['systemctl', 'stop', u], { timeoutMs: 90_000 });
    for (const u of units) expect((await host.exec(['systemctl', 'is-active', u])).stdout.trim(), await unitLog(u)).toBe('inactive');
    expect(await machines()).toBe('');
  });

  it('-U --private-users-ownership=chown --link-journal=guest: the tree chowned into the range, the journal directory with it', { timeout: 240_000 }, async () => {
    // last of the Debian tests: the trees stay chowned
    const ours = await debian('mh-jours');
    const ref = await debian('mh-jref');
    await bootBoth(ours, ref, ['-U', '--private-users-ownership=chown', '--link-journal=guest']);
    for (const s of [ours, ref]) {
      const base = await owner(s.tree);
      expect(base, s.name).not.toBe('0:0');
      // the directory made for the link belongs to the container's root: the range's base on the disk
      expect((await owner(`${s.tree}/var/log/journal/${s.id}`)).split(':')[0], s.name).toBe(base.split(':')[0]);
      expect(await exists(`${s.tree}/var/log/journal/${s.id}/system.journal`), s.name).toBe(true);
      await visibleEverywhere(s);
    }
    await powerOff(ours, ref);
  });

  it('-x links no journal (252: not in ephemeral mode), and refuses --link-journal=host|guest without try-', { timeout: 120_000 }, async () => {
    for (const [argv0, name] of [[['node', NSPAWN], 'mh-jeph'], [['systemd-nspawn'], 'mh-jephref']] as const) {
      const uuid = newId();
      const run = start([...argv0, '-q', '-x', '--link-journal=try-guest', `--uuid=${uuid}`, '-D', INNER_TREE, '-M', name, '/bin/sh', '-c', 'ls -d /var/log/journal 2>&1; true'], ENV);
      expect(await within(60_000, run.exited), run.output()).toBe(0);
      expect(await exists(`/var/log/journal/${uuid}`), `${name} linked ${uuid}`).toBe(false);
      // not even the tree's /var/log/journal is made (the busybox tree has none)
      expect(run.output()).toMatch(/No such file or directory/);
      for (const mode of ['host', 'guest']) {
        const refused = start([...argv0, '-q', '-x', `--link-journal=${mode}`, '-D', INNER_TREE, '-M', name, '/bin/true'], ENV);
        expect(await within(30_000, refused.exited)).toBe(1);
        expect(refused.output()).toContain('--ephemeral and --link-journal={host,guest} may not be combined.');
      }
    }
  });
});
