/**
 * parseNspawnFile() and formatNspawnFile(): .nspawn text ⇄ Settings, as systemd-nspawn (v259) reads it.
 */
import { decodeUtf8 } from './c-util.js';
import { parseConfText } from './conf-parser.js';
import type { CustomMount, Diagnostic, Rlimit, Settings } from './model.js';
import { RLIMIT_NAMES, SettingsError } from './model.js';
import { type KeyContext, NSPAWN_SECTIONS, finishSettings, lookupKey } from './nspawn-keys.js';
import { formatCpuSet } from './grammar.js';
import { formatRlimitValue } from './rlimits.js';
import { signalName } from './signals.js';

export interface ParseNspawnOptions {
  /** the file's path, used in diagnostics */
  path: string;
  /**
   * The directory relative Bind=/Overlay= sources are made absolute against (systemd uses its working
   * directory). Default: process.cwd() where available, else "/".
   */
  cwd?: string;
}

export interface ParseNspawnResult {
  /** what the file sets; {} when the file is refused (fatal) */
  settings: Settings;
  /** one per problem, in file order: warnings for ignored lines/values, errors for what refuses the file */
  diagnostics: Diagnostic[];
  /** systemd would refuse the whole file (and not start the container): see the 'error' diagnostics */
  fatal: boolean;
}

function defaultCwd(): string {
  const p = (globalThis as { process?: { cwd?: () => string } }).process;
  try {
    return p?.cwd?.() ?? '/';
  } catch {
    return '/';
  }
}

/**
 * Parses a .nspawn file. Never throws: problems become diagnostics, and every line systemd would ignore is
 * ignored. `text` may be the raw bytes, so that text that is not valid UTF-8 is refused as systemd does.
 */
export function parseNspawnFile(text: string | Uint8Array, opts: ParseNspawnOptions): ParseNspawnResult {
  const file = opts.path;
  const diagnostics: Diagnostic[] = [];
  const settings: Settings = {};
  let fatal = false;
  try {
    const source = typeof text === 'string' ? text : decodeUtf8(text);
    const cwd = opts.cwd ?? defaultCwd();
    parseConfText(source, {
      sections: NSPAWN_SECTIONS,
      known: (section, key) => lookupKey(section, key) !== undefined,
      assign: (section, key, value, line) => {
        let stop = false;
        const ctx: KeyContext = {
          s: settings,
          cwd,
          warn: (message) => diagnostics.push({ severity: 'warning', file, line, key, value, message }),
          fatal: (message) => {
            diagnostics.push({ severity: 'error', file, line, key, value, message });
            stop = true;
          },
        };
        lookupKey(section, key)!.parse(ctx, value);
        if (stop) fatal = true;
        return !stop;
      },
      report: (e) => {
        diagnostics.push({ severity: e.fatal ? 'error' : 'warning', file, line: e.line, message: e.message });
        if (e.fatal) fatal = true;
      },
    });
  } catch (err) {
    // not expected; keep the promise never to throw
    diagnostics.push({ severity: 'error', file, message: `Internal error while parsing: ${String(err)}` });
    fatal = true;
  }
  if (fatal) return { settings: {}, diagnostics, fatal };
  finishSettings(settings);
  return { settings, diagnostics, fatal };
}

// ---------------------------------------------------------------------------------------------------------------
// formatting

const yesNo = (b: boolean): string => (b ? 'yes' : 'no');

/** For Bind=, TemporaryFileSystem=, Overlay=, PivotRoot= (":"-separated, backslash escapes). */
const escColon = (s: string): string => s.replace(/[\\:]/g, '\\$&');
/** For words split at whitespace without quote handling (SystemCallFilter=, Interface=, ...). */
const escBlank = (s: string): string => s.replace(/[\\ \t\n\r]/g, '\\$&');

/** A word for config_parse_strv() (quotes removed, backslashes literal): quote runs so any text survives. */
export function quoteStrvWord(w: string): string {
  if (w !== '' && !/[ \t\n\r"']/.test(w)) return w;
  let out = '';
  let run = '';
  for (const ch of w) {
    if (ch === '"') {
      if (run) out += `"${run}"`;
      run = '';
      out += `'"'`;
    } else run += ch;
  }
  if (run || out === '') out += `"${run}"`;
  return out;
}

function formatMount(m: CustomMount): [string, string] {
  switch (m.type) {
    case 'bind': {
      const src = m.source === '' ? '' : (m.sourceInRoot ? '+' : '') + escColon(m.source);
      let opts = m.options;
      if (opts === undefined) {
        const o: string[] = [];
        if (!m.recursive) o.push('norbind');
        if (m.idmapping) o.push(m.idmapping);
        else if (m.idmap !== undefined) o.push(m.idmap ? 'idmap' : 'noidmap');
        if (o.length) opts = o.join(',');
      }
      return [m.readOnly ? 'BindReadOnly' : 'Bind', `${src}:${escColon(m.destination)}${opts ? `:${opts}` : ''}`];
    }
    case 'tmpfs':
      return ['TemporaryFileSystem', `${escColon(m.destination)}:${m.options}`];
    case 'inaccessible':
      return ['Inaccessible', m.destination];
    case 'overlay':
      return [m.readOnly ? 'OverlayReadOnly' : 'Overlay', [...m.lowers, m.upper, m.destination].map(escColon).join(':')];
    case 'arbitrary':
      // only an OCI bundle makes one; no key writes it
      throw new SettingsError(`A mount of type ${m.fstype} on ${m.destination} (from an OCI bundle) has no .nspawn key.`);
  }
}

function formatPrivateUsers(p: NonNullable<Settings['privateUsers']>): string {
  if (p.mode === 'no') return 'no';
  if (p.mode === 'pick') return 'pick';
  if (p.shift === undefined) return 'yes';
  return `${p.shift}:${p.range ?? 0x10000}`;
}

const formatRlimit = (name: (typeof RLIMIT_NAMES)[number], r: Rlimit): string =>
  r.soft === r.hard
    ? formatRlimitValue(name, r.soft)
    : `${formatRlimitValue(name, r.soft)}:${formatRlimitValue(name, r.hard)}`;

/** An Interface=/MACVLAN=/IPVLAN= word: a strv word, as systemd-nspawn 252 reads the key (config_parse_strv()). */
const formatInterface = quoteStrvWord;

function execLines(s: Settings): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const add = (k: string, v: string | undefined) => v !== undefined && out.push([k, v]);
  if (s.startMode === 'boot') add('Boot', 'yes');
  else if (s.startMode === 'pid2') add('ProcessTwo', 'yes');
  else if (s.startMode === 'pid1') add('Boot', 'no');
  if (s.ephemeral !== undefined) add('Ephemeral', yesNo(s.ephemeral));
  if (s.parameters?.length) add('Parameters', s.parameters.map(quoteStrvWord).join(' '));
  if (s.environment?.length) add('Environment', s.environment.map(quoteStrvWord).join(' '));
  add('User', s.user);
  if (s.capability?.length) add('Capability', s.capability.join(' '));
  if (s.ambientCapability?.length) add('AmbientCapability', s.ambientCapability.join(' '));
  if (s.dropCapability?.length) add('DropCapability', s.dropCapability.join(' '));
  if (s.killSignal !== undefined) add('KillSignal', signalName(s.killSignal));
  add('Personality', s.personality);
  add('MachineID', s.machineId);
  add('WorkingDirectory', s.workingDirectory);
  if (s.pivotRoot)
    add('PivotRoot', escColon(s.pivotRoot.newRoot) + (s.pivotRoot.oldRoot !== undefined ? `:${s.pivotRoot.oldRoot}` : ''));
  if (s.privateUsers) add('PrivateUsers', formatPrivateUsers(s.privateUsers));
  if (s.notifyReady !== undefined) add('NotifyReady', yesNo(s.notifyReady));
  if (s.systemCallFilter?.allow.length)
    add('SystemCallFilter', s.systemCallFilter.allow.map((w, i) => (i === 0 && w.startsWith('~') ? '\\' : '') + escBlank(w)).join(' '));
  if (s.systemCallFilter?.deny.length) add('SystemCallFilter', `~${s.systemCallFilter.deny.map(escBlank).join(' ')}`);
  for (const n of RLIMIT_NAMES) {
    const r = s.rlimits?.[n];
    if (r) add(`Limit${n}`, formatRlimit(n, r));
  }
  add('Hostname', s.hostname);
  if (s.noNewPrivileges !== undefined) add('NoNewPrivileges', yesNo(s.noNewPrivileges));
  if (s.oomScoreAdjust !== undefined) add('OOMScoreAdjust', String(s.oomScoreAdjust));
  if (s.cpuAffinity?.length) add('CPUAffinity', formatCpuSet(s.cpuAffinity));
  add('ResolvConf', s.resolvConf);
  if (s.linkJournal !== undefined)
    add('LinkJournal', s.linkJournalTry && (s.linkJournal === 'host' || s.linkJournal === 'guest') ? `try-${s.linkJournal}` : s.linkJournal);
  add('Timezone', s.timezone);
  if (s.suppressSync !== undefined) add('SuppressSync', yesNo(s.suppressSync));
  return out;
}

function filesLines(s: Settings): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  if (s.readOnly !== undefined) out.push(['ReadOnly', yesNo(s.readOnly)]);
  if (s.volatile !== undefined) out.push(['Volatile', s.volatile]);
  for (const m of s.customMounts ?? []) out.push(formatMount(m));
  if (s.privateUsersOwnership !== undefined) out.push(['PrivateUsersOwnership', s.privateUsersOwnership]);
  if (s.bindUser?.length) out.push(['BindUser', s.bindUser.map(escBlank).join(' ')]);
  if (s.bindUserShell !== undefined)
    out.push(['BindUserShell', typeof s.bindUserShell === 'string' ? s.bindUserShell : yesNo(s.bindUserShell)]);
  return out;
}

function networkLines(s: Settings): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  if (s.privateNetwork !== undefined) out.push(['Private', yesNo(s.privateNetwork)]);
  if (s.networkNamespacePath !== undefined) out.push(['NamespacePath', s.networkNamespacePath]);
  for (const e of s.networkInterfaces ?? []) out.push(['Interface', formatInterface(e)]);
  for (const e of s.networkMacvlan ?? []) out.push(['MACVLAN', formatInterface(e)]);
  for (const e of s.networkIpvlan ?? []) out.push(['IPVLAN', formatInterface(e)]);
  if (s.networkVeth !== undefined) out.push(['VirtualEthernet', yesNo(s.networkVeth)]);
  for (const e of s.networkVethExtra ?? []) out.push(['VirtualEthernetExtra', e.split(':').map(escColon).join(':')]);
  if (s.networkBridge !== undefined) out.push(['Bridge', s.networkBridge]);
  if (s.networkZone !== undefined) out.push(['Zone', s.networkZone]);
  for (const p of s.exposePorts ?? []) out.push(['Port', `${p.protocol}:${p.hostPort}:${p.containerPort}`]);
  return out;
}

/** A line must not end in an unescaped backslash (that would continue it); values are stripped, so pad it. */
function finishLine(key: string, value: string): string {
  const line = `${key}=${value}`;
  let escaped = false;
  for (const ch of line) escaped = escaped ? false : ch === '\\';
  return escaped ? `${line} ` : line;
}

/**
 * Writes settings as a .nspawn file. For settings parseNspawnFile() produced, parsing the result gives the same
 * settings back. Fields that only exist on the command line (directory, machineName, consoleMode, ...) are not
 * written.
 */
export function formatNspawnFile(settings: Settings): string {
  const sections: Array<[string, Array<[string, string]>]> = [
    ['Exec', execLines(settings)],
    ['Files', filesLines(settings)],
    ['Network', networkLines(settings)],
  ];
  const parts: string[] = [];
  for (const [name, lines] of sections) {
    if (lines.length === 0) continue;
    parts.push(`[${name}]\n${lines.map(([k, v]) => finishLine(k, v)).join('\n')}\n`);
  }
  return parts.join('\n');
}
