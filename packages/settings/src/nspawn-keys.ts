/**
 * The .nspawn key table: section + key → a handler that parses the value (with the grammar systemd v259 uses for
 * that key, see src/nspawn/nspawn-gperf.gperf and nspawn-settings.c) and updates the Settings draft. A handler
 * reports an invalid value through ctx.warn() (systemd logs and ignores the line) or ctx.fatal() (systemd refuses
 * the whole file).
 */
import { type Errno, type Result, WHITESPACE, cescape, errnoText, isEmpty, parseBooleanC, stringIsSafe } from './c-util.js';
import { ALL_CAPS, capabilityFromName, capabilityList, capabilityMask } from './capabilities.js';
import { EXTRACT_RETAIN_ESCAPE, EXTRACT_UNQUOTE, extractFirstWord, splitWords } from './extract-word.js';
import {
  type StringTable,
  type Unset,
  UNSET,
  RESOLV_CONF_MODE,
  TIMEZONE_MODE,
  USERNS_OWNERSHIP,
  VOLATILE_MODE,
  assign,
  id128FromString,
  id128IsNull,
  linkJournalFromString,
  orUnset,
  parseCpuAffinity252,
  parseOomScoreAdjust,
  parseUserShell,
  personalityFromString,
  privateUsersFromString,
  syscallFilterWords,
  validUserGroupName,
} from './grammar.js';
import { RLIMIT_NAMES, type RlimitName, type Settings } from './model.js';
import { bindMountParse, inaccessibleMountParse, overlayMountParse, pivotRootParse, tmpfsMountParse } from './mounts.js';
import { exposePortParse, ifnameValid, vethExtraParse } from './net-values.js';
import { checkAbsolutePath } from './paths.js';
import { rlimitParse } from './rlimits.js';
import { signalFromString } from './signals.js';
import { hostnameAndDnsValid } from './values.js';

export type NspawnSection = 'Exec' | 'Files' | 'Network';
export const NSPAWN_SECTIONS: readonly NspawnSection[] = ['Exec', 'Network', 'Files'];

export interface KeyContext {
  /** the settings parsed so far; handlers update it */
  readonly s: Settings;
  /** directory relative Bind=/Overlay= sources are resolved against */
  readonly cwd: string;
  /** the value is (partly) invalid and was (partly) ignored */
  warn(why: string): void;
  /** systemd refuses the whole file */
  fatal(why: string): void;
}

export interface KeySpec {
  section: NspawnSection;
  key: string;
  /** the systemd version that added the key, where later than v252 */
  since?: number;
  parse(ctx: KeyContext, value: string): void;
}

type Fields<T> = { [K in keyof Settings]-?: NonNullable<Settings[K]> extends T ? K : never }[keyof Settings];

// ---------------------------------------------------------------------------------------------------------------
// handler factories

/**
 * A key whose value is one field, parsed by a grammar (which may give UNSET: the field is deleted); a value the
 * grammar refuses is ignored with the message `why` (given the errno where systemd prints it).
 */
const setting =
  <K extends keyof Settings>(field: K, parse: (v: string) => Result<Settings[K] | Unset>, why: string | ((errno: Errno) => string)) =>
  (ctx: KeyContext, v: string): void => {
    const r = parse(v);
    if (r.ok) assign(ctx.s, field, r.value);
    else ctx.warn(typeof why === 'string' ? why : why(r.errno));
  };

/** config_parse_tristate(): a boolean; empty = unset. */
const tristate = (field: Fields<boolean>) => setting(field, orUnset(parseBooleanC), 'Failed to parse boolean value, ignoring: Invalid argument');

/** config_parse_strv(): quoted words appended; empty = reset. */
const strv =
  (field: 'parameters' | 'environment' | 'networkInterfaces' | 'networkMacvlan' | 'networkIpvlan') =>
  (ctx: KeyContext, v: string): void => {
    if (v === '') {
      delete ctx.s[field];
      return;
    }
    const w = splitWords(v, WHITESPACE, EXTRACT_UNQUOTE | EXTRACT_RETAIN_ESCAPE);
    if (!w.ok) ctx.warn('Invalid syntax (unbalanced quotes), ignoring.');
    else ctx.s[field] = [...(ctx.s[field] ?? []), ...w.words];
  };

/** config_parse_path(): absolute, simplified, normalized; empty = reset. */
const absolutePath =
  (field: 'workingDirectory' | 'networkNamespacePath') =>
  (ctx: KeyContext, v: string): void => {
    const r = v === '' ? { ok: true as const, value: UNSET as Unset } : checkAbsolutePath(v);
    if (r.ok) assign(ctx.s, field, r.value);
    else ctx.warn(r.why);
  };

/** Calls fn for each whitespace-separated word (extract_first_word(..., 0)); false if a word could not be extracted. */
function forEachWord(v: string, fn: (word: string) => boolean | void): boolean {
  let rest: string | null = v;
  for (;;) {
    const w = extractFirstWord(rest, WHITESPACE, 0);
    if (!w.ok) return false;
    if (w.word === null) return true;
    if (fn(w.word) === false) return true;
    rest = w.rest;
  }
}

/** config_parse_capability(): whitespace-separated names ORed in; bad names skipped one by one. */
const capabilities =
  (field: 'capability' | 'dropCapability' | 'ambientCapability') =>
  (ctx: KeyContext, v: string): void => {
    let u = 0n;
    const extracted = forEachWord(v, (word) => {
      if (word === 'all') u = ALL_CAPS;
      else {
        const n = capabilityFromName(word);
        if (n < 0) ctx.warn(`Failed to parse capability, ignoring: ${word}`);
        else u |= 1n << BigInt(n);
      }
    });
    if (!extracted) {
      ctx.warn('Failed to extract capability string, ignoring.');
      return;
    }
    const list = capabilityList(capabilityMask(ctx.s[field]) | u);
    if (list) ctx.s[field] = list;
  };

/** DEFINE_CONFIG_PARSE_ENUM: a value of a string table (with its boolean aliases). */
const enumeration = <K extends keyof Settings>(field: K, table: StringTable<NonNullable<Settings[K]> & string>, what: string) =>
  setting(field, (v) => table.fromString(v), `Failed to parse ${what}, ignoring: Invalid argument`);

/** config_parse_boot() / config_parse_pid2(): the two keys share the start mode. */
const startMode =
  (which: 'boot' | 'pid2') =>
  (ctx: KeyContext, v: string): void => {
    const b = parseBooleanC(v);
    if (!b.ok) {
      ctx.warn(`Failed to parse ${which === 'boot' ? 'Boot' : 'ProcessTwo'}= parameter, ignoring: Invalid argument`);
      return;
    }
    const other = which === 'boot' ? 'pid2' : 'boot';
    const cur = ctx.s.startMode;
    if (b.value ? cur === other : cur === which) {
      ctx.warn('Conflicting Boot= or ProcessTwo= setting found. Ignoring.');
      return;
    }
    if (b.value) ctx.s.startMode = which;
    else ctx.s.startMode ??= 'pid1';
  };

const rlimit =
  (name: RlimitName) =>
  (ctx: KeyContext, v: string): void => {
    const r = rlimitParse(name, v);
    if (r.ok) ctx.s.rlimits = { ...ctx.s.rlimits, [name]: r.value };
    else if (r.errno === 'EILSEQ') ctx.warn('Soft resource limit chosen higher than hard limit, ignoring.');
    else ctx.warn(`Failed to parse resource limit, ignoring: ${errnoText(r.errno)}`);
  };

/**
 * Interface=, MACVLAN=, IPVLAN=: config_parse_strv() in systemd-nspawn 252, so any word is taken when the file is
 * read (an interface that does not exist fails the start); v254+ refuses the whole file for an invalid name. A word
 * HOST:CONTAINER (v254's pair) still names both sides.
 */
const interfaces = (field: 'networkInterfaces' | 'networkMacvlan' | 'networkIpvlan') => strv(field);

const addMount = (ctx: KeyContext, m: NonNullable<Settings['customMounts']>[number]): void => {
  ctx.s.customMounts = [...(ctx.s.customMounts ?? []), m];
};

// ---------------------------------------------------------------------------------------------------------------
// the table

const EXEC: Array<[string, (ctx: KeyContext, v: string) => void, number?]> = [
  ['Boot', startMode('boot')],
  ['Ephemeral', tristate('ephemeral')],
  ['ProcessTwo', startMode('pid2')],
  ['Parameters', strv('parameters')],
  ['Environment', strv('environment')],
  [
    'User',
    (ctx, v) => {
      if (v === '') delete ctx.s.user;
      else if (!stringIsSafe(v)) ctx.warn(`Specified string contains unsafe characters, ignoring: ${cescape(v)}`);
      else ctx.s.user = v;
    },
  ],
  ['Capability', capabilities('capability')],
  ['AmbientCapability', capabilities('ambientCapability')],
  ['DropCapability', capabilities('dropCapability')],
  [
    'KillSignal',
    (ctx, v) => {
      const r = signalFromString(v);
      if (r.ok) ctx.s.killSignal = r.value;
      else ctx.warn(`Failed to parse signal, ignoring: ${errnoText(r.errno)}`);
    },
  ],
  ['Personality', setting('personality', orUnset(personalityFromString), 'Unknown or unsupported personality, ignoring.')],
  [
    'MachineID',
    (ctx, v) => {
      const r = id128FromString(v);
      if (!r.ok) ctx.warn('Failed to parse 128-bit ID/UUID, ignoring: Invalid argument');
      else if (id128IsNull(r.value)) ctx.warn('128-bit ID/UUID is all 0, ignoring.');
      else ctx.s.machineId = r.value;
    },
  ],
  ['WorkingDirectory', absolutePath('workingDirectory')],
  [
    'PivotRoot',
    (ctx, v) => {
      const r = pivotRootParse(v);
      if (r.ok) ctx.s.pivotRoot = r.value;
      else ctx.warn(`Invalid pivot root mount specification: ${errnoText(r.errno)}`);
    },
  ],
  [
    'PrivateUsers',
    (ctx, v) => {
      const r = privateUsersFromString(v, true);
      if (r.ok) ctx.s.privateUsers = r.value;
      // systemd prints the range part in all three messages (a NULL pointer when there is none)
      else
        ctx.warn(
          `${{ range: 'UID/GID range invalid', shift: 'UID/GID shift invalid', combination: 'UID/GID shift and range combination invalid' }[r.part]}, ignoring: ${r.range ?? '(null)'}`,
        );
    },
  ],
  ['NotifyReady', tristate('notifyReady')],
  [
    'SystemCallFilter',
    (ctx, v) => {
      // an unparsable word keeps the ones before it
      const r = syscallFilterWords(v);
      if (r.names.length > 0) {
        const cur = ctx.s.systemCallFilter ?? { allow: [], deny: [] };
        ctx.s.systemCallFilter = r.deny ? { allow: cur.allow, deny: [...cur.deny, ...r.names] } : { allow: [...cur.allow, ...r.names], deny: cur.deny };
      }
      if (!r.ok) ctx.warn('Failed to parse SystemCallFilter= parameter, ignoring: Invalid argument');
    },
  ],
  ...RLIMIT_NAMES.map((n): [string, (ctx: KeyContext, v: string) => void] => [`Limit${n}`, rlimit(n)]),
  [
    'Hostname',
    (ctx, v) => {
      if (v === '') {
        delete ctx.s.hostname;
        return;
      }
      const r = hostnameAndDnsValid(v);
      if (r === 'ok') ctx.s.hostname = v;
      else if (r === 'hostname') ctx.warn('Specified invalid hostname, ignoring assignment.');
      else ctx.warn('Specified invalid DNS domain name, ignoring assignment.');
    },
  ],
  ['NoNewPrivileges', tristate('noNewPrivileges')],
  [
    'OOMScoreAdjust',
    setting('oomScoreAdjust', orUnset(parseOomScoreAdjust), (e) =>
      e === 'ERANGE' ? 'OOM score adjust value out of range, ignoring.' : `Failed to parse the OOM score adjust value, ignoring: ${errnoText(e)}`,
    ),
  ],
  [
    'CPUAffinity',
    (ctx, v) => {
      if (v === '') {
        delete ctx.s.cpuAffinity;
        return;
      }
      // systemd-nspawn 252's reading: a bad word refuses the whole file (v259 ignores just the word)
      const r = parseCpuAffinity252(v);
      for (const w of r.warnings) ctx.warn(w);
      if (r.fatal !== undefined) return ctx.fatal(r.fatal);
      if (r.cpus) ctx.s.cpuAffinity = [...new Set([...(ctx.s.cpuAffinity ?? []), ...r.cpus])].sort((a, b) => a - b);
      else if (r.warnings.length === 0) delete ctx.s.cpuAffinity;
    },
  ],
  ['ResolvConf', enumeration('resolvConf', RESOLV_CONF_MODE, 'resolv.conf mode')],
  [
    'LinkJournal',
    (ctx, v) => {
      const r = linkJournalFromString(v);
      if (!r.ok) ctx.warn('Failed to parse link journal mode, ignoring.');
      else {
        ctx.s.linkJournal = r.value.mode;
        ctx.s.linkJournalTry = r.value.try;
      }
    },
  ],
  ['Timezone', enumeration('timezone', TIMEZONE_MODE, 'timezone mode')],
  ['SuppressSync', tristate('suppressSync')],
];


const FILES: Array<[string, (ctx: KeyContext, v: string) => void, number?]> = [
  ['ReadOnly', tristate('readOnly')],
  ['Volatile', enumeration('volatile', VOLATILE_MODE, 'volatile mode')],
  ...(['Bind', 'BindReadOnly'] as const).map((key): [string, (ctx: KeyContext, v: string) => void] => [
    key,
    (ctx, v) => {
      const r = bindMountParse(v, key === 'BindReadOnly', ctx.cwd);
      if (r.ok) addMount(ctx, r.value);
      else ctx.warn(r.why);
    },
  ]),
  [
    'TemporaryFileSystem',
    (ctx, v) => {
      const r = tmpfsMountParse(v);
      if (r.ok) addMount(ctx, r.value);
      else ctx.warn(`Invalid temporary file system specification: ${errnoText(r.errno)}`);
    },
  ],
  [
    'Inaccessible',
    (ctx, v) => {
      const r = inaccessibleMountParse(v);
      if (r.ok) addMount(ctx, r.value);
      else ctx.warn(`Invalid inaccessible file system specification: ${errnoText(r.errno)}`);
    },
  ],
  ...(['Overlay', 'OverlayReadOnly'] as const).map((key): [string, (ctx: KeyContext, v: string) => void] => [
    key,
    (ctx, v) => {
      const r = overlayMountParse(v, key === 'OverlayReadOnly', ctx.cwd);
      if (r.ok) addMount(ctx, r.value);
      else ctx.warn(`Invalid overlay file system specification, ignoring: ${errnoText(r.errno)}`);
    },
  ]),
  [
    'PrivateUsersChown',
    (ctx, v) => {
      const b = parseBooleanC(v);
      if (b.ok) ctx.s.privateUsersOwnership = b.value ? 'chown' : 'off';
      else ctx.warn('Failed to parse user namespace ownership mode, ignoring.');
    },
  ],
  [
    'PrivateUsersOwnership',
    enumeration('privateUsersOwnership', USERNS_OWNERSHIP, 'user namespace ownership mode'),
  ],
  [
    'BindUser',
    (ctx, v) => {
      if (isEmpty(v)) {
        delete ctx.s.bindUser;
        return;
      }
      // systemd adds the words before a bad one, then ignores the rest of the line
      const extracted = forEachWord(v, (word) => {
        if (!validUserGroupName(word)) {
          ctx.warn(`User name '${word}' not valid, ignoring.`);
          return false;
        }
        ctx.s.bindUser = [...(ctx.s.bindUser ?? []), word];
        return true;
      });
      if (!extracted) ctx.warn('Failed to parse BindUser= list, ignoring.');
    },
  ],
  ['BindUserShell', setting('bindUserShell', orUnset(parseUserShell), 'Failed to parse BindUserShell= value, ignoring: Invalid argument'), 258],
];

const NETWORK: Array<[string, (ctx: KeyContext, v: string) => void, number?]> = [
  ['Private', tristate('privateNetwork')],
  ['NamespacePath', absolutePath('networkNamespacePath'), 259],
  ['Interface', interfaces('networkInterfaces')],
  ['MACVLAN', interfaces('networkMacvlan')],
  ['IPVLAN', interfaces('networkIpvlan')],
  ['VirtualEthernet', tristate('networkVeth')],
  [
    'VirtualEthernetExtra',
    (ctx, v) => {
      const r = vethExtraParse(v);
      if (r.ok) ctx.s.networkVethExtra = [...(ctx.s.networkVethExtra ?? []), r.value];
      else ctx.warn(`Invalid extra virtual Ethernet link specification: ${errnoText(r.errno)}`);
    },
  ],
  [
    'Bridge',
    (ctx, v) => {
      if (v === '') delete ctx.s.networkBridge;
      else if (!ifnameValid(v)) ctx.warn('Interface name is not valid or too long, ignoring assignment.');
      else ctx.s.networkBridge = v;
    },
  ],
  [
    'Zone',
    (ctx, v) => {
      if (ifnameValid(`vz-${v}`)) ctx.s.networkZone = v;
      else ctx.warn(`Invalid network zone name, ignoring: ${v}`);
    },
  ],
  [
    'Port',
    (ctx, v) => {
      const r = exposePortParse(v);
      if (!r.ok) ctx.warn(`Failed to parse host port: ${errnoText(r.errno)}`);
      else if ((ctx.s.exposePorts ?? []).some((p) => p.protocol === r.value.protocol && p.hostPort === r.value.hostPort))
        ctx.warn('Duplicate port specification, ignoring.');
      else ctx.s.exposePorts = [...(ctx.s.exposePorts ?? []), r.value];
    },
  ],
];

const spec = (section: NspawnSection) => ([key, parse, since]: [string, KeySpec['parse'], number?]): KeySpec =>
  since === undefined ? { section, key, parse } : { section, key, parse, since };

/** Every key systemd v259 knows, in nspawn-gperf.gperf order. */
export const NSPAWN_KEYS: readonly KeySpec[] = [
  ...EXEC.map(spec('Exec')),
  ...FILES.map(spec('Files')),
  ...NETWORK.map(spec('Network')),
];

// built on first use: most starts read no .nspawn file
let BY_NAME: Map<string, KeySpec> | undefined;

/** The key's spec, or undefined (keys and sections are case-sensitive). */
export const lookupKey = (section: string, key: string): KeySpec | undefined =>
  (BY_NAME ??= new Map(NSPAWN_KEYS.map((k) => [`${k.section}.${k.key}`, k]))).get(`${section}.${key}`);

/** settings_load()'s fix-up: PrivateUsers= and the ownership mode are set together or not at all. */
export function finishSettings(s: Settings): void {
  if (s.privateUsers !== undefined && s.privateUsersOwnership === undefined)
    s.privateUsersOwnership = s.privateUsers.mode === 'pick' ? 'chown' : 'off';
  if (s.privateUsersOwnership !== undefined && s.privateUsers === undefined) s.privateUsers = { mode: 'no' };
}
