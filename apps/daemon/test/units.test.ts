/**
 * The shipped systemd units pass this host's `systemd-analyze verify` (252) as a whole, ExecStart= included: in a
 * root of their own (--root) with the host's targets and slices, and our commands where an install puts them
 * (/usr/local/bin for `npm install -g` with Node in /usr/local, as scripts/setup.sh installs it; /usr/bin for a
 * Node in /usr), every unit must verify with exit status 0 and not one line of complaint. (systemd reports an
 * unknown key or a bad value as "..., ignoring" and still exits 0, so the output counts as much as the status.)
 * nspawn@.service's command line must also be one nspawn accepts.
 */
import { execa } from 'execa';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCommandLine } from '@nspawn/settings';

const units = join(import.meta.dirname, '../units');
const HOST_UNITS = '/usr/lib/systemd/system';
const UNITS: Array<[file: string, name: string]> = [
  ['nspawn@.service', 'nspawn@dm-web.service'],
  ['machines.target', 'machines.target'],
  ['nspawnd.service', 'nspawnd.service'],
];

let top = '';
beforeAll(() => {
  expect(existsSync('/usr/bin/systemd-analyze'), 'systemd-analyze is needed (Debian: systemd)').toBe(true);
  top = mkdtempSync('/tmp/dm-units-');
});
afterAll(() => {
  if (top) rmSync(top, { recursive: true, force: true });
});

/** A root for systemd-analyze: the host's targets and slices, our units, and BINS (name -> directory) as stubs. */
function makeRoot(name: string, bins: Record<string, string>): string {
  const root = join(top, name);
  mkdirSync(join(root, 'usr/lib/systemd/system'), { recursive: true });
  for (const f of readdirSync(HOST_UNITS).filter((f) => /\.(target|slice)$/.test(f)))
    cpSync(join(HOST_UNITS, f), join(root, 'usr/lib/systemd/system', f), { verbatimSymlinks: true });
  cpSync(units, join(root, 'etc/systemd/system'), { recursive: true });
  for (const [bin, dir] of Object.entries(bins)) {
    mkdirSync(join(root, dir), { recursive: true });
    writeFileSync(join(root, dir, bin), '#!/bin/sh\nexit 0\n');
    chmodSync(join(root, dir, bin), 0o755);
  }
  return root;
}

// asynchronous: systemd-analyze takes seconds under load, and a synchronous wait blocks the vitest worker
async function verify(root: string, unit: string) {
  const r = await execa('systemd-analyze', ['verify', '--man=no', `--root=${root}`, unit], { timeout: 60_000, reject: false, stripFinalNewline: false });
  return { status: r.exitCode ?? null, output: `${r.stdout}${r.stderr}`.trim() };
}

describe('unit files', () => {
  for (const dir of ['/usr/local/bin', '/usr/bin']) {
    it.each(UNITS)(`%s verifies with nspawn and nspawnd in ${dir}`, async (_file, name) => {
      const root = makeRoot(`root-${dir.replace(/\//g, '_')}`, { nspawn: dir, nspawnd: dir });
      expect(await verify(root, name)).toEqual({ status: 0, output: '' });
    });
  }
  it('a unit whose command is not installed does not verify (the check sees ExecStart=)', async () => {
    const root = makeRoot('root-without-nspawnd', { nspawn: '/usr/local/bin' });
    const r = await verify(root, 'nspawnd.service');
    expect(r.status).not.toBe(0);
    expect(r.output).toMatch(/nspawnd is not executable/);
  });
  it('nspawn@.service runs a command line nspawn accepts, every option of it supported', () => {
    const line = readFileSync(join(units, 'nspawn@.service'), 'utf8').match(/^ExecStart=(\S+) (.*)$/m);
    expect(line).not.toBeNull();
    expect(line![1]!.split('/').pop()).toBe('nspawn');
    const argv = line![2]!.replace(/%i/g, 'dm-web').split(' ');
    const cl = parseCommandLine(argv);
    expect(cl.unsupported).toEqual([]);
    expect(cl.settings).toMatchObject({
      machineName: 'dm-web',
      startMode: 'boot',
      keepUnit: true,
      networkVeth: true,
      privateNetwork: true,
      privateUsers: { mode: 'pick' },
      privateUsersOwnership: 'auto',
      settingsMode: 'override',
    });
    expect(cl.help || cl.version).toBe(false);
  });
});
