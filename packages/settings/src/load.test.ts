import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type SettingsFs, fileInSameDir, loadSettings, settingsSearchPath } from './load.js';
import { SETTING_KEYS, type SettingKey } from './model.js';

/** An in-memory SettingsFs that records what was looked at. */
function fakeFs(files: Record<string, string | Uint8Array | Error>): SettingsFs & { looked: string[] } {
  const looked: string[] = [];
  return {
    looked,
    exists: (p) => {
      looked.push(p);
      return p in files;
    },
    readFile: (p) => {
      const c = files[p];
      if (c === undefined) throw new Error(`ENOENT: ${p}`);
      if (c instanceof Error) throw c;
      return c;
    },
  };
}

const ETC = '/etc/systemd/nspawn/web.nspawn';
const RUN = '/run/systemd/nspawn/web.nspawn';
const NEXT = '/var/lib/machines/web.nspawn';
const IMAGE = '/var/lib/machines/web';

describe('search order and trust', () => {
  it('looks in /etc, then /run, then next to the image', () => {
    expect(settingsSearchPath('web', IMAGE)).toEqual([
      { path: ETC, trusted: true },
      { path: RUN, trusted: true },
      { path: NEXT, trusted: false },
    ]);
    const fs = fakeFs({});
    expect(loadSettings({ machineName: 'web', imagePath: IMAGE, mode: 'yes', fs })).toEqual({
      settings: {},
      trusted: false,
      diagnostics: [],
      fatal: false,
    });
    expect(fs.looked).toEqual([ETC, RUN, NEXT]);
  });

  it('takes the first file found and trusts /etc and /run', () => {
    const all = { [ETC]: '[Exec]\nHostname=etc\n', [RUN]: '[Exec]\nHostname=run\n', [NEXT]: '[Exec]\nHostname=next\n' };
    expect(loadSettings({ machineName: 'web', imagePath: IMAGE, fs: fakeFs(all) })).toMatchObject({
      settings: { hostname: 'etc' },
      path: ETC,
      trusted: true,
    });
    const { [ETC]: _e, ...noEtc } = all;
    expect(loadSettings({ machineName: 'web', imagePath: IMAGE, fs: fakeFs(noEtc) })).toMatchObject({
      settings: { hostname: 'run' },
      path: RUN,
      trusted: true,
    });
    expect(loadSettings({ machineName: 'web', imagePath: IMAGE, fs: fakeFs({ [NEXT]: all[NEXT] }) })).toMatchObject({
      settings: { hostname: 'next' },
      path: NEXT,
      trusted: false,
    });
  });

  it('uses the machine name, not the image name, and the directory that contains the image', () => {
    expect(settingsSearchPath('web', '/images/disk.raw')[2]).toEqual({ path: '/images/web.nspawn', trusted: false });
    expect(settingsSearchPath('web', '/var/lib/machines/web/')[2]).toEqual({ path: NEXT, trusted: false });
    expect(settingsSearchPath('web', 'relative/dir')[2]).toEqual({ path: 'relative/web.nspawn', trusted: false });
    expect(fileInSameDir('dir', 'x.nspawn')).toBe('x.nspawn');
  });

  it('does not look next to the root directory', () => {
    const fs = fakeFs({ '/web.nspawn': '[Exec]\nHostname=x\n' });
    expect(loadSettings({ machineName: 'web', imagePath: '/', fs }).path).toBeUndefined();
    expect(fs.looked).toEqual([ETC, RUN]);
  });

  it('--settings=no reads nothing; trusted trusts any file; override keeps location trust', () => {
    const fs = fakeFs({ [NEXT]: '[Exec]\nHostname=next\n' });
    expect(loadSettings({ machineName: 'web', imagePath: IMAGE, mode: 'no', fs })).toEqual({ settings: {}, trusted: false, diagnostics: [], fatal: false });
    expect(fs.looked).toEqual([]);
    expect(loadSettings({ machineName: 'web', imagePath: IMAGE, mode: 'trusted', fs })).toMatchObject({ path: NEXT, trusted: true });
    expect(loadSettings({ machineName: 'web', imagePath: IMAGE, mode: 'override', fs })).toMatchObject({ path: NEXT, trusted: false });
  });

  it('does not read a file when the command line set every group, except with override', () => {
    const set = new Set<SettingKey>(SETTING_KEYS);
    const fs = fakeFs({ [ETC]: '[Exec]\nHostname=etc\n' });
    expect(loadSettings({ machineName: 'web', imagePath: IMAGE, fs, set }).path).toBeUndefined();
    expect(fs.looked).toEqual([]);
    expect(loadSettings({ machineName: 'web', imagePath: IMAGE, fs, set, mode: 'override' }).path).toBe(ETC);
    set.delete('hostname');
    expect(loadSettings({ machineName: 'web', imagePath: IMAGE, fs, set }).path).toBe(ETC);
  });

  it('passes on the parser diagnostics and refusals', () => {
    const r = loadSettings({ machineName: 'web', imagePath: IMAGE, fs: fakeFs({ [RUN]: '[Exec]\nBoot=maybe\nHostname=h\n' }) });
    expect(r.settings).toEqual({ hostname: 'h' });
    expect(r.diagnostics).toMatchObject([{ severity: 'warning', file: RUN, line: 2, key: 'Boot', value: 'maybe' }]);
    const bad = loadSettings({ machineName: 'web', imagePath: IMAGE, fs: fakeFs({ [RUN]: new Uint8Array([0x5b, 0xff, 0x5d]) }) });
    expect(bad).toMatchObject({ fatal: true, settings: {}, path: RUN });
  });

  it('fails when a file exists but cannot be read, and on an invalid machine name', () => {
    const r = loadSettings({ machineName: 'web', imagePath: IMAGE, fs: fakeFs({ [ETC]: new Error('EACCES: permission denied') }) });
    expect(r).toMatchObject({ fatal: true, path: ETC, trusted: false, settings: {} });
    expect(r.diagnostics[0]?.message).toBe(`Failed to open ${ETC}: EACCES: permission denied`);
    expect(loadSettings({ machineName: '../../etc/passwd', imagePath: IMAGE, fs: fakeFs({}) })).toMatchObject({ fatal: true });
  });
});

describe('the node:fs default', () => {
  let dir = '';
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = '';
  });

  it('finds an untrusted file next to a directory', () => {
    dir = mkdtempSync(join(tmpdir(), 'nspawn-settings-load-'));
    const name = `load-test-${process.pid}-${Date.now()}`;
    mkdirSync(join(dir, name));
    writeFileSync(join(dir, `${name}.nspawn`), '[Exec]\nHostname=from-disk\n');
    expect(loadSettings({ machineName: name, imagePath: join(dir, name) })).toEqual({
      settings: { hostname: 'from-disk' },
      path: join(dir, `${name}.nspawn`),
      trusted: false,
      diagnostics: [],
      fatal: false,
    });
  });
});
