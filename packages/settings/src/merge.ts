/**
 * merge_settings() of systemd-nspawn 252/259: takes what a .nspawn file sets unless the command line set that
 * group (SettingKey), and drops privileged settings from untrusted files with systemd's warnings.
 */
import type { SettingKey, Settings, SettingsMode } from './model.js';
import { RLIMIT_NAMES } from './model.js';
import { capabilityFromName, capabilityList, capabilityMask } from './capabilities.js';

export interface MergeCommandLine {
  settings: Settings;
  /** the groups the command line set (see SETTING_KEY_OF_FIELD) */
  set: ReadonlySet<SettingKey>;
}

export interface MergeFile {
  settings: Settings;
  /** where the file was found (loadSettings().trusted); --settings=trusted makes any file trusted */
  trusted: boolean;
  mode: SettingsMode;
  /** the file's path, for the warnings */
  path?: string;
}

export interface MergeResult {
  settings: Settings;
  /** systemd's "Ignoring ..., file ... is not trusted." warnings, in systemd's order */
  warnings: string[];
}

// (on first use: capabilityFromName() at load would cost every start its regular expression)
let capNetAdmin: bigint | undefined;
const CAP_NET_ADMIN = () => (capNetAdmin ??= 1n << BigInt(capabilityFromName('CAP_NET_ADMIN')));

/** settings_network_configured() */
export function settingsNetworkConfigured(s: Settings): boolean {
  return (
    s.privateNetwork !== undefined ||
    s.networkVeth !== undefined ||
    s.networkBridge !== undefined ||
    s.networkZone !== undefined ||
    s.networkInterfaces !== undefined ||
    s.networkMacvlan !== undefined ||
    s.networkIpvlan !== undefined ||
    s.networkVethExtra !== undefined ||
    s.networkNamespacePath !== undefined
  );
}

/** settings_private_network() */
export function settingsPrivateNetwork(s: Settings): boolean {
  return (
    s.privateNetwork === true ||
    s.networkVeth === true ||
    s.networkBridge !== undefined ||
    s.networkZone !== undefined ||
    s.networkInterfaces !== undefined ||
    s.networkMacvlan !== undefined ||
    s.networkIpvlan !== undefined ||
    s.networkVethExtra !== undefined
  );
}

/** settings_network_veth() */
export function settingsNetworkVeth(s: Settings): boolean {
  return s.networkVeth === true || s.networkBridge !== undefined || s.networkZone !== undefined;
}

/** Sets or deletes out[k] (systemd's free_and_replace: the target becomes whatever the source is, even NULL). */
function replace<K extends keyof Settings>(out: Settings, from: Settings, k: K): void {
  if (from[k] === undefined) delete out[k];
  else out[k] = structuredClone(from[k]);
}

const NETWORK_FIELDS = [
  'networkInterfaces',
  'networkMacvlan',
  'networkIpvlan',
  'networkVethExtra',
  'networkBridge',
  'networkZone',
  'networkNamespacePath',
] as const satisfies ReadonlyArray<keyof Settings>;

interface Rule {
  key: SettingKey;
  /** the file has something for this group */
  present(f: Settings): boolean;
  /** the warning when the file is not trusted (undefined: not privileged) */
  untrusted?: string;
  /** applies the file's value */
  apply(out: Settings, f: Settings): void;
}

/** The simple groups, in merge_settings() order: one or more fields copied as they are. */
const copy = (key: SettingKey, fields: ReadonlyArray<keyof Settings>, untrusted?: string): Rule => ({
  key,
  present: (f) => f[fields[0]!] !== undefined,
  ...(untrusted !== undefined ? { untrusted } : {}),
  apply: (out, f) => fields.forEach((k) => replace(out, f, k)),
});

const RULES_BEFORE_CAPS: readonly Rule[] = [
  copy('start-mode', ['startMode', 'parameters']),
  copy('ephemeral', ['ephemeral']),
  copy('pivot-root', ['pivotRoot']),
  copy('working-directory', ['workingDirectory']),
  copy('environment', ['environment']),
  copy('user', ['user']),
];

const RULES_AFTER_CAPS: readonly Rule[] = [
  { ...copy('kill-signal', ['killSignal']), present: (f) => (f.killSignal ?? 0) > 0 },
  copy('personality', ['personality']),
  copy('machine-id', ['machineId'], 'Ignoring MachineID= setting, file %s is not trusted.'),
  copy('read-only', ['readOnly']),
  copy('volatile-mode', ['volatile']),
  {
    ...copy('custom-mounts', ['customMounts'], 'Ignoring TemporaryFileSystem=, Bind= and BindReadOnly= settings, file %s is not trusted.'),
    present: (f) => (f.customMounts?.length ?? 0) > 0,
  },
  {
    key: 'network',
    present: settingsNetworkConfigured,
    untrusted: 'Ignoring network settings, file %s is not trusted.',
    apply: (out, f) => {
      out.networkVeth = settingsNetworkVeth(f);
      out.privateNetwork = settingsPrivateNetwork(f);
      for (const k of NETWORK_FIELDS) replace(out, f, k);
    },
  },
  {
    ...copy('expose-ports', ['exposePorts'], 'Ignoring Port= setting, file %s is not trusted.'),
    present: (f) => (f.exposePorts?.length ?? 0) > 0,
  },
  copy('userns', ['privateUsers', 'privateUsersOwnership'], 'Ignoring PrivateUsers= and PrivateUsersChown= settings, file %s is not trusted.'),
  // Debian's 252 (252.39, like later stable releases) ignores BindUser= from an untrusted file; v252.31's source does not
  { ...copy('bind-user', ['bindUser'], 'Ignoring bind user setting, file %s is not trusted.'), present: (f) => (f.bindUser?.length ?? 0) > 0 },
  copy('bind-user-shell', ['bindUserShell']),
  copy('notify-ready', ['notifyReady']),
];

const RULES_AFTER_LIMITS: readonly Rule[] = [
  copy('hostname', ['hostname']),
  copy('no-new-privileges', ['noNewPrivileges']),
  copy('oom-score-adjust', ['oomScoreAdjust'], "Ignoring OOMScoreAdjust= setting, file '%s' is not trusted."),
  {
    ...copy('cpu-affinity', ['cpuAffinity'], "Ignoring CPUAffinity= setting, file '%s' is not trusted."),
    present: (f) => (f.cpuAffinity?.length ?? 0) > 0,
  },
  copy('resolv-conf', ['resolvConf']),
  copy('link-journal', ['linkJournal', 'linkJournalTry'], "Ignoring journal link setting, file '%s' is not trusted."),
  copy('timezone', ['timezone']),
  copy('suppress-sync', ['suppressSync']),
];

/** The capability group: Capability= adds, DropCapability= removes, network settings imply CAP_NET_ADMIN. */
function mergeCapabilities(out: Settings, f: Settings, trusted: boolean, networkMasked: boolean, warn: (w: string) => void): void {
  let plus = capabilityMask(f.capability);
  const minus = capabilityMask(f.dropCapability);
  let networkMinus = 0n;
  if (!networkMasked && settingsNetworkConfigured(f)) {
    if (settingsPrivateNetwork(f)) plus |= CAP_NET_ADMIN();
    else networkMinus |= CAP_NET_ADMIN();
  }
  let applied = 0n;
  if (!trusted && plus !== 0n) {
    if (capabilityMask(f.capability) !== 0n) warn('Ignoring Capability= setting, file %s is not trusted.');
  } else {
    applied = plus;
    setCaps(out, 'capability', (capabilityMask(out.capability) & ~networkMinus) | plus);
  }
  // the command line's drops are undone for what the file adds; the file's drops always apply
  setCaps(out, 'dropCapability', (capabilityMask(out.dropCapability) & ~applied) | minus);
  const ambient = capabilityMask(f.ambientCapability);
  if (!trusted && ambient !== 0n) warn('Ignoring AmbientCapability= setting, file %s is not trusted.');
  else setCaps(out, 'ambientCapability', capabilityMask(out.ambientCapability) | ambient);
}

function setCaps(out: Settings, k: 'capability' | 'dropCapability' | 'ambientCapability', mask: bigint): void {
  const list = capabilityList(mask);
  if (list) out[k] = list;
  else delete out[k];
}

/** The system call filter: an untrusted file may only add to the deny list. */
function mergeSyscallFilter(out: Settings, f: Settings, trusted: boolean, warn: (w: string) => void): void {
  const sf = f.systemCallFilter;
  if (!sf || (sf.allow.length === 0 && sf.deny.length === 0)) return;
  if (!trusted && sf.allow.length > 0) warn('Ignoring SystemCallFilter= settings, file %s is not trusted.');
  else out.systemCallFilter = structuredClone(sf);
}

/**
 * Merges a .nspawn file into the command-line settings as systemd-nspawn does. With mode 'override' the file
 * wins over the command line; with 'no' the file is not used.
 */
export function mergeSettings(cli: MergeCommandLine, file: MergeFile): MergeResult {
  const out: Settings = structuredClone(cli.settings);
  const warnings: string[] = [];
  if (file.mode === 'no') return { settings: out, warnings };
  const trusted = file.mode === 'trusted' || file.trusted;
  const masked = (k: SettingKey): boolean => file.mode !== 'override' && cli.set.has(k);
  const path = file.path ?? '(unknown)';
  const warn = (w: string): void => void warnings.push(w.replace('%s', path));
  const f = file.settings;
  const run = (rules: readonly Rule[]): void => {
    for (const r of rules) {
      if (masked(r.key) || !r.present(f)) continue;
      if (r.untrusted !== undefined && !trusted) warn(r.untrusted);
      else r.apply(out, f);
    }
  };

  run(RULES_BEFORE_CAPS);
  if (!masked('capability')) mergeCapabilities(out, f, trusted, masked('network'), warn);
  run(RULES_AFTER_CAPS);
  if (!masked('syscall-filter')) mergeSyscallFilter(out, f, trusted, warn);
  for (const n of RLIMIT_NAMES) {
    const r = f.rlimits?.[n];
    if (masked(`rlimit-${n}`) || r === undefined) continue;
    if (!trusted) warn(`Ignoring Limit${n}= setting, file '%s' is not trusted.`);
    else out.rlimits = { ...out.rlimits, [n]: { ...r } };
  }
  run(RULES_AFTER_LIMITS);
  return { settings: out, warnings };
}

/**
 * strv_env_merge(): later lists override earlier ones entry by entry ("NAME=" prefix match, or the whole entry
 * when it has no '='), order of first appearance kept. What the container's environment is built with.
 */
export function mergeEnvironment(...lists: ReadonlyArray<readonly string[] | undefined>): string[] {
  const out: string[] = [];
  for (const l of lists)
    for (const e of l ?? []) {
      const eq = e.indexOf('=');
      const prefix = eq < 0 ? e : e.slice(0, eq + 1);
      const j = out.findIndex((x) => x.startsWith(prefix));
      if (j < 0) out.push(e);
      else out[j] = e;
    }
  return out;
}
