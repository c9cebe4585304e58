/**
 * `nspawnctl install-units`: the unit text against systemd 252's systemd-nspawn@.service (this host's, from the
 * systemd package) directive for directive; the shipped apps/daemon/units against the same text; an install into a
 * temporary --root (as root): the files, the machines.target link, `systemd-analyze verify` of what was installed,
 * a second run that changes nothing, an edited file refused (nothing written, even with --force), an earlier unedited
 * file replaced only with --force, and drop-ins never touched.
 */
import { execa } from 'execa';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { machinesTarget, nspawndService, nspawnService, UNIT_FLAGS } from '../src/ctl-units.js';

const REPO = join(import.meta.dirname, '../../..');
const NSPAWNCTL = join(REPO, 'apps/cli/bin/nspawnctl');
const SYSTEMD_UNIT = '/usr/lib/systemd/system/systemd-nspawn@.service';
const HOST_UNITS = '/usr/lib/systemd/system';

/** [section, key, value] of each assignment, comments and blank lines left out */
function directives(text: string): string[] {
  let section = '';
  const r: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) {
      section = s[1]!;
      continue;
    }
    const eq = line.indexOf('=');
    r.push(`${section}/${line.slice(0, eq)}=${line.slice(eq + 1)}`);
  }
  return r;
}

describe('the unit text', () => {
  it("nspawn@.service is systemd-nspawn@.service's, directive for directive, with nspawn in ExecStart=", () => {
    expect(existsSync(SYSTEMD_UNIT), `${SYSTEMD_UNIT} is needed (Debian: systemd-container)`).toBe(true);
    const theirs = directives(readFileSync(SYSTEMD_UNIT, 'utf8'));
    const ours = directives(nspawnService('/opt/x/bin/nspawn'));
    // the same ExecStart= flags, in the same order, after another program
    const exec = (d: string[]) => d.filter((l) => l.startsWith('Service/ExecStart='));
    expect(exec(theirs)).toEqual(['Service/ExecStart=systemd-nspawn --quiet --keep-unit --boot --link-journal=try-guest --network-veth -U --settings=override --machine=%i']);
    expect(exec(ours)).toEqual([`Service/ExecStart=/opt/x/bin/nspawn ${UNIT_FLAGS.join(' ')} --machine=%i`]);
    expect(exec(ours)[0]!.split(' ').slice(1)).toEqual(exec(theirs)[0]!.split(' ').slice(1));
    // every other directive of theirs, in their order; ours adds only its man page and the order after nspawnd
    const rest = (d: string[]) => d.filter((l) => !l.startsWith('Service/ExecStart=') && !l.startsWith('Unit/Documentation='));
    expect(rest(ours).filter((l) => l !== 'Unit/After=nspawnd.service')).toEqual(rest(theirs));
    expect(ours).toContain('Unit/Documentation=man:nspawn(1)');
    expect(ours).toContain('Unit/After=nspawnd.service');
    // the ones the brief names, spelled out (a change of the host's file does not hide them)
    for (const d of ['Service/Type=notify', 'Service/KillMode=mixed', 'Service/Delegate=yes', 'Service/Slice=machine.slice', 'Install/WantedBy=machines.target', 'Service/DevicePolicy=closed', 'Service/DeviceAllow=/dev/net/tun rwm', 'Service/DeviceAllow=char-pts rw'])
      expect(ours).toContain(d);
  });

  it('machines.target is systemd\'s, wanting nspawnd', () => {
    const theirs = directives(readFileSync(join(HOST_UNITS, 'machines.target'), 'utf8'));
    const ours = directives(machinesTarget());
    expect(ours.filter((l) => l !== 'Unit/Wants=nspawnd.service')).toEqual(theirs);
  });

  it('apps/daemon/units ship the same text, with bare command names', () => {
    const dir = join(REPO, 'apps/daemon/units');
    expect(readdirSync(dir).sort()).toEqual(['machines.target', 'nspawn@.service', 'nspawnd.service']);
    expect(readFileSync(join(dir, 'nspawn@.service'), 'utf8')).toBe(nspawnService('nspawn'));
    expect(readFileSync(join(dir, 'nspawnd.service'), 'utf8')).toBe(nspawndService('nspawnd'));
    expect(readFileSync(join(dir, 'machines.target'), 'utf8')).toBe(machinesTarget());
  });
});

describe('nspawnctl install-units --root', () => {
  let top = '';
  beforeAll(() => {
    expect(process.getuid?.(), 'install-units is root only').toBe(0);
    top = mkdtempSync(join(tmpdir(), 'iu-'));
  });
  afterAll(() => {
    if (top) rmSync(top, { recursive: true, force: true });
  });
  const ctl = (...args: string[]) => execa(NSPAWNCTL, args, { reject: false, stripFinalNewline: false, env: { NSPAWN_CODE_CACHE: '0' } });
  const nspawn = realpathSync(join(REPO, 'apps/cli/bin/nspawn'));
  const nspawnd = realpathSync(join(REPO, 'apps/cli/bin/nspawnd'));

  it('installs the units for this nspawn, wires machines.target, verifies, and runs again unchanged', async () => {
    const root = join(top, 'fresh');
    mkdirSync(root);
    const r = await ctl('install-units', `--root=${root}`);
    expect(r.exitCode, r.stderr).toBe(0);
    const etc = join(root, 'etc/systemd/system');
    expect(readdirSync(etc).sort()).toEqual(['machines.target', 'multi-user.target.wants', 'nspawn@.service', 'nspawnd.service']);
    const unit = readFileSync(join(etc, 'nspawn@.service'), 'utf8');
    expect(unit).toContain(`\nExecStart=${nspawn} --quiet --keep-unit --boot --link-journal=try-guest --network-veth -U --settings=override --machine=%i\n`);
    expect(unit.split('\n').slice(1).join('\n')).toBe(nspawnService(nspawn));
    expect(readFileSync(join(etc, 'nspawnd.service'), 'utf8')).toContain(`\nExecStart=${nspawnd}\n`);
    expect(readlinkSync(join(etc, 'multi-user.target.wants/machines.target'))).toBe('/etc/systemd/system/machines.target');
    // a second run: nothing to do
    const again = await ctl('install-units', `--root=${root}`);
    expect(again.exitCode, again.stderr).toBe(0);
    expect(again.stdout).not.toMatch(/Installed/);
    expect(readFileSync(join(etc, 'nspawn@.service'), 'utf8')).toBe(unit);

    // systemd-analyze verify, in the root: the host's targets and slices and modprobe@.service beside ours; the
    // commands at their paths inside the root (stubs, as systemd checks ExecStart= there)
    expect(existsSync('/usr/bin/systemd-analyze'), 'systemd-analyze is needed (Debian: systemd)').toBe(true);
    mkdirSync(join(root, 'usr/lib/systemd/system'), { recursive: true });
    for (const f of readdirSync(HOST_UNITS).filter((f) => /\.(target|slice)$/.test(f) || f === 'modprobe@.service'))
      if (f !== 'machines.target') cpSync(join(HOST_UNITS, f), join(root, 'usr/lib/systemd/system', f), { verbatimSymlinks: true });
    for (const bin of [nspawn, nspawnd, '/sbin/modprobe']) {
      mkdirSync(join(root, bin, '..'), { recursive: true });
      writeFileSync(join(root, bin), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    }
    for (const u of ['nspawn@iu-a.service', 'nspawnd.service', 'machines.target']) {
      const v = await execa('systemd-analyze', ['verify', '--man=no', `--root=${root}`, u], { reject: false, timeout: 60_000 });
      expect({ unit: u, status: v.exitCode, output: `${v.stdout}${v.stderr}`.trim() }).toEqual({ unit: u, status: 0, output: '' });
    }
  });

  it('uses the host\'s machines.target where there is one (links it, writes none)', async () => {
    const root = join(top, 'vendor');
    mkdirSync(join(root, 'usr/lib/systemd/system'), { recursive: true });
    cpSync(join(HOST_UNITS, 'machines.target'), join(root, 'usr/lib/systemd/system/machines.target'));
    const r = await ctl('install-units', `--root=${root}`);
    expect(r.exitCode, r.stderr).toBe(0);
    const etc = join(root, 'etc/systemd/system');
    expect(existsSync(join(etc, 'machines.target'))).toBe(false);
    expect(readlinkSync(join(etc, 'multi-user.target.wants/machines.target'))).toBe('/usr/lib/systemd/system/machines.target');
  });

  it('refuses a unit the admin edited, writing nothing, with or without --force; drop-ins are never touched', async () => {
    const root = join(top, 'edited');
    mkdirSync(root);
    const etc = join(root, 'etc/systemd/system');
    expect((await ctl('install-units', `--root=${root}`)).exitCode).toBe(0);
    const f = join(etc, 'nspawn@.service');
    const edited = `${readFileSync(f, 'utf8')}Environment=EDITED=1\n`;
    writeFileSync(f, edited);
    mkdirSync(join(etc, 'nspawn@.service.d'));
    writeFileSync(join(etc, 'nspawn@.service.d/override.conf'), '[Service]\nExecStart=\nExecStart=/bin/true\n');
    rmSync(join(etc, 'nspawnd.service'));
    for (const force of [[], ['--force']]) {
      const r = await ctl('install-units', `--root=${root}`, ...force);
      expect(r.exitCode).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(`${f} exists with other content (not an unedited file of install-units): not replaced; override it with drop-ins (systemctl edit) or remove it.\n`);
      expect(readFileSync(f, 'utf8')).toBe(edited);
      // nothing else written either (the missing nspawnd.service stays missing)
      expect(existsSync(join(etc, 'nspawnd.service'))).toBe(false);
    }
    expect(readFileSync(join(etc, 'nspawn@.service.d/override.conf'), 'utf8')).toBe('[Service]\nExecStart=\nExecStart=/bin/true\n');
    // a file nobody wrote (no stamp) is the admin's too
    writeFileSync(f, nspawnService(nspawn));
    const r = await ctl('install-units', `--root=${root}`, '--force');
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/nspawn@\.service exists with other content/);
  });

  it('replaces an earlier unedited file of its own only with --force', async () => {
    const root = join(top, 'earlier');
    mkdirSync(root);
    const etc = join(root, 'etc/systemd/system');
    expect((await ctl('install-units', `--root=${root}`)).exitCode).toBe(0);
    // an earlier install, from nspawn at another path: its stamp matches its own text
    const f = join(etc, 'nspawn@.service');
    const { createHash } = await import('node:crypto');
    const body = nspawnService('/opt/old/bin/nspawn');
    const first = readFileSync(f, 'utf8').split('\n')[0]!.replace(/sha256:[0-9a-f]+$/, `sha256:${createHash('sha256').update(body).digest('hex')}`);
    writeFileSync(f, `${first}\n${body}`);
    const no = await ctl('install-units', `--root=${root}`);
    expect(no.exitCode).toBe(1);
    expect(no.stderr).toBe(`${f} was installed by an earlier install-units with other content: replace it with --force.\n`);
    expect(readFileSync(f, 'utf8')).toContain('/opt/old/bin/nspawn');
    const yes = await ctl('install-units', `--root=${root}`, '--force');
    expect(yes.exitCode, yes.stderr).toBe(0);
    expect(yes.stdout).toContain(`Installed ${f}.`);
    expect(readFileSync(f, 'utf8')).toContain(`ExecStart=${nspawn} `);
  });

  it('refuses arguments and a --root that does not exist, in one line', async () => {
    const a = await ctl('install-units', 'extra');
    expect(a.exitCode).toBe(1);
    expect(a.stderr).toBe("install-units takes no arguments (got 'extra'); the directory is --root=DIR.\n");
    const b = await ctl('install-units', `--root=${join(top, 'nowhere')}`);
    expect(b.exitCode).toBe(1);
    expect(b.stderr).toBe(`--root=${join(top, 'nowhere')}: no such directory.\n`);
    expect(existsSync(join(top, 'nowhere'))).toBe(false);
  });
});
