/**
 * Finding the .nspawn file of a machine and deciding whether to trust it: load_settings() of systemd-nspawn 252.
 */
import type { Diagnostic, SettingKey, Settings, SettingsMode } from './model.js';
import { SETTING_KEYS } from './model.js';
import { parseNspawnFile } from './nspawn-file.js';
import { pathSimplify } from './paths.js';
import { machineNameIsValid } from './values.js';

/** The file system as loadSettings() needs it; pass a fake in tests. */
export interface SettingsFs {
  /** whether something exists at the path (a missing file is skipped, as systemd skips ENOENT) */
  exists(path: string): boolean;
  /** the file's content; may throw (systemd then fails: "Failed to open ...") */
  readFile(path: string): string | Uint8Array;
}

/** Directories searched first, in this order; files there are trusted. */
export const TRUSTED_SETTINGS_DIRS = ['/etc/systemd/nspawn', '/run/systemd/nspawn'] as const;

export interface LoadSettingsOptions {
  /** the machine name (-M, or derived from the image), before any random suffix added for --ephemeral */
  machineName: string;
  /** the -D directory or the -i image file; the untrusted file is looked for in its parent directory */
  imagePath: string;
  /** --settings= (default 'yes') */
  mode?: SettingsMode;
  /** default: node:fs */
  fs?: SettingsFs;
  /** the groups the command line set: when it set all of them, no file is read (as systemd does) */
  set?: ReadonlySet<SettingKey>;
  /** for relative Bind=/Overlay= sources; see ParseNspawnOptions.cwd */
  cwd?: string;
}

export interface LoadSettingsResult {
  /** what the file sets ({} when no file was used) */
  settings: Settings;
  /** the file used, if any */
  path?: string;
  /** whether privileged settings from the file may be applied (see mergeSettings) */
  trusted: boolean;
  diagnostics: Diagnostic[];
  /** systemd would refuse to start: the file could not be read or parsed (see the 'error' diagnostics) */
  fatal: boolean;
}

type NodeFs = {
  existsSync(p: string): boolean;
  readFileSync(p: string): Uint8Array;
};

/** SettingsFs on node:fs (loaded lazily, so the parser works where node:fs does not exist). */
export function nodeSettingsFs(): SettingsFs {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const fs = proc?.getBuiltinModule?.('node:fs') as NodeFs | undefined;
  if (!fs) throw new Error('node:fs is not available; pass a SettingsFs');
  return {
    exists: (p) => fs.existsSync(p),
    readFile: (p) => fs.readFileSync(p),
  };
}

/** file_in_same_dir(): NAME next to the (simplified) path, i.e. in its parent directory. */
export function fileInSameDir(path: string, name: string): string {
  const p = pathSimplify(path);
  const i = p.lastIndexOf('/');
  return i < 0 ? name : p.slice(0, i + 1) + name;
}

/**
 * The places a machine's settings file is looked for, in order, with the trust each location gives:
 * /etc/systemd/nspawn/NAME.nspawn, /run/systemd/nspawn/NAME.nspawn (trusted), then NAME.nspawn in the
 * directory that contains the image or directory (untrusted; not searched for the directory "/").
 */
export function settingsSearchPath(machineName: string, imagePath: string): Array<{ path: string; trusted: boolean }> {
  const name = `${machineName}.nspawn`;
  const out = TRUSTED_SETTINGS_DIRS.map((d) => ({ path: `${d}/${name}`, trusted: true }));
  if (imagePath !== '' && pathSimplify(imagePath) !== '/') out.push({ path: fileInSameDir(imagePath, name), trusted: false });
  return out;
}

/**
 * Finds, reads and parses the machine's .nspawn file the way systemd-nspawn 252 does. Never throws; a file that
 * cannot be read gives an 'error' diagnostic and fatal: true.
 */
export function loadSettings(opts: LoadSettingsOptions): LoadSettingsResult {
  const mode = opts.mode ?? 'yes';
  const none = (trusted: boolean, diagnostics: Diagnostic[] = [], fatal = false): LoadSettingsResult => ({
    settings: {},
    trusted,
    diagnostics,
    fatal,
  });
  if (mode === 'no') return none(false);
  if (mode !== 'override' && opts.set && SETTING_KEYS.every((k) => opts.set!.has(k))) return none(mode === 'trusted');
  if (!machineNameIsValid(opts.machineName))
    return none(false, [{ severity: 'error', message: `Invalid machine name: ${opts.machineName}` }], true);

  let fs: SettingsFs;
  try {
    fs = opts.fs ?? nodeSettingsFs();
  } catch (err) {
    return none(false, [{ severity: 'error', message: String(err instanceof Error ? err.message : err) }], true);
  }
  for (const { path, trusted } of settingsSearchPath(opts.machineName, opts.imagePath)) {
    let content: string | Uint8Array;
    try {
      if (!fs.exists(path)) continue;
      content = fs.readFile(path);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      return { ...none(false, [{ severity: 'error', file: path, message: `Failed to open ${path}: ${why}` }], true), path };
    }
    const r = parseNspawnFile(content, opts.cwd === undefined ? { path } : { path, cwd: opts.cwd });
    return { settings: r.settings, path, trusted: mode === 'trusted' ? true : trusted, diagnostics: r.diagnostics, fatal: r.fatal };
  }
  return none(mode === 'trusted');
}
