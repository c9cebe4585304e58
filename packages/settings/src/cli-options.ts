/**
 * systemd-nspawn 252's options, in the order of its options[] table (src/nspawn/nspawn.c, parse_argv()): each
 * option's letter, its argument, and what it does to the settings, with the value grammar of grammar.ts (through
 * the throwing adapters of values.ts) and systemd-nspawn's messages. cli-args.ts runs getopt over this table.
 */
import { resolve } from 'node:path';
import { type Result, errnoText } from './c-util.js';
import { capabilityFromName } from './capabilities.js';
import { parseLoadCredential, parseSetCredential } from './credentials.js';
import { type ArgKind } from './getopt.js';
import { UNSET, type Unset, assign, id128IsNull, parseCpuSet, parseOomScoreAdjust, syscallFilterWords, validUserGroupName } from './grammar.js';
import { type CustomMount, type SettingKey, type Settings, SettingsError } from './model.js';
import { bindMountParse, inaccessibleMountParse, overlayMountParse, pivotRootParse, tmpfsMountParse } from './mounts.js';
import { exposePortParse, ifnameValid } from './net-values.js';
import { parseRlimitName, rlimitParse } from './rlimits.js';
import { signalFromString } from './signals.js';
import {
  hostnameIsValid,
  id128ToUuid,
  parseBoolean,
  parseConsoleMode,
  parseEnvAssignment,
  parseId128,
  parseLinkJournal,
  parsePersonality,
  parsePrivateUsers,
  parseResolvConfMode,
  parseTimezoneMode,
  parseUserNsOwnership,
  parseVolatileMode,
} from './values.js';

export interface CommandLine {
  settings: Settings;
  /** setting groups the command line set (systemd's arg_settings_mask): a .nspawn file fills in the rest */
  set: Set<SettingKey>;
  help: boolean;
  version: boolean;
  /** options that were accepted but whose feature this build does not implement; the runtime refuses them */
  unsupported: string[];
  /** the warnings systemd-nspawn logs while it parses (--share-system's), in order */
  warnings: string[];
  /** `--OPTION=help`: the accepted values, to print (one a line) instead of running */
  listing?: string[];
}

/** What an option's action gets: the command line so far, where relative paths start, our environment. */
export interface ParseState {
  readonly cl: CommandLine;
  readonly cwd: string;
  readonly environ: Readonly<Record<string, string | undefined>>;
  /** -U was given (it implies --private-users-ownership=auto unless that is given too) */
  sawU: boolean;
  /** a warning systemd-nspawn logs at once: added to CommandLine.warnings, and told to the caller's callback */
  warn(message: string): void;
}

export interface OptionDef {
  /** the long name; a short-only option has its letter here (as in COMMAND_LINE_OPTIONS) */
  long: string;
  short?: string;
  arg: ArgKind;
  apply: (st: ParseState, value: string | undefined) => void;
  /**
   * Parsed and checked as systemd-nspawn does, then refused by the runtime ("... is not supported yet by this
   * nspawn build"): the option lands in CommandLine.unsupported. --help, nspawn(1) and the completions never
   * advertise such an option (apps/cli/test/refused.test.ts derives the set from this table).
   */
  refused?: true;
  /** matched by its full name only (an option beyond systemd-nspawn 252: see GetoptOption.exact) */
  exact?: true;
}

// ---------------------------------------------------------------------------------------------------------------
// actions

const list = <K extends keyof Settings>(s: Settings, k: K) => ((s[k] ??= [] as never) as unknown as unknown[]);

function addMount(st: ParseState, m: CustomMount) {
  (st.cl.settings.customMounts ??= []).push(m);
  st.cl.set.add('custom-mounts');
}

/** Sets a field and records its group. */
function put<K extends keyof Settings>(st: ParseState, field: K, value: Settings[K] | Unset, group?: SettingKey) {
  assign(st.cl.settings, field, value);
  if (group) st.cl.set.add(group);
}

function bool(opt: string, v: string): boolean {
  try {
    return parseBoolean(v);
  } catch {
    throw new SettingsError(`Failed to parse --${opt}= argument: ${v}`, `--${opt}`, v);
  }
}

/** A grammar's SettingsError with the option and value in front. */
function wrap<T>(opt: string, v: string, f: (v: string) => T): T {
  try {
    return f(v);
  } catch (e) {
    if (e instanceof SettingsError) throw new SettingsError(`--${opt}=${v}: ${e.message}`, `--${opt}`, v);
    throw e;
  }
}

/** A systemd parser's failure as systemd-nspawn words it: "MESSAGE: strerror". */
function must<T>(r: Result<T>, key: string, value: string, message: string): T {
  if (r.ok) return r.value;
  throw new SettingsError(`${message}: ${errnoText(r.errno)}`, key, value);
}

/** parse_capability_spec(): comma-separated names or numbers, "all" for every capability. */
function capabilitySpec(opt: string, v: string): string[] {
  const out: string[] = [];
  for (const t of v.split(',')) {
    if (t === '') continue;
    if (t === 'all') {
      out.push('all');
      continue;
    }
    const n = capabilityFromName(t);
    if (n < 0) throw new SettingsError(`Failed to parse capability ${t}.`, `--${opt}`, v);
    out.push(t.toUpperCase().startsWith('CAP_') ? t.toUpperCase() : t);
  }
  return out;
}

function bind(v: string, readOnly: boolean, st: ParseState): CustomMount {
  const r = bindMountParse(v, readOnly, st.cwd);
  if (!r.ok) throw new SettingsError(`Failed to parse --bind(-ro)= argument ${v}: ${r.why}`, readOnly ? '--bind-ro' : '--bind', v);
  return r.value;
}

function overlay(v: string, readOnly: boolean, st: ParseState): CustomMount {
  const r = overlayMountParse(v, readOnly, st.cwd);
  if (!r.ok && r.errno === 'EADDRNOTAVAIL')
    throw new SettingsError('--overlay(-ro)= needs at least two colon-separated directories specified.', '--overlay', v);
  return must(r, readOnly ? '--overlay-ro' : '--overlay', v, `Failed to parse --overlay(-ro)= argument ${v}`);
}

function startMode(st: ParseState, mode: 'boot' | 'pid2') {
  // checked when the second one is seen, as systemd does (an error after it is not reached)
  if (st.cl.settings.startMode === (mode === 'boot' ? 'pid2' : 'boot')) throw new SettingsError('--boot and --as-pid2 may not be combined.', '--boot');
  put(st, 'startMode', mode, 'start-mode');
}

/** --network-interface= and friends: each adds a link and implies a private network. */
function networkList(long: string, field: 'networkInterfaces' | 'networkMacvlan' | 'networkIpvlan' | 'networkVethExtra'): OptionDef {
  return {
    long,
    arg: 'required',
    apply: (st, v) => {
      (list(st.cl.settings, field) as string[]).push(v!);
      put(st, 'privateNetwork', true, 'network');
    },
  };
}

/** The options that give a private network with a veth pair (and maybe a bridge or zone to put it in). */
function veth(st: ParseState, field?: 'networkBridge' | 'networkZone', v?: string) {
  if (field) st.cl.settings[field] = v!;
  st.cl.settings.networkVeth = true;
  put(st, 'privateNetwork', true, 'network');
}

/** Options accepted for compatibility that have nothing to do on this host, or features not built yet. */
function unsupported(long: string, arg: ArgKind, short?: string): OptionDef {
  // parseCommandLine() records a refused option in CommandLine.unsupported
  const apply = () => {};
  return short ? { long, short, arg, apply, refused: true } : { long, arg, apply, refused: true };
}

const capabilities = (long: string, field: 'capability' | 'dropCapability' | 'ambientCapability'): OptionDef => ({
  long,
  arg: 'required',
  apply: (st, v) => {
    (list(st.cl.settings, field) as string[]).push(...capabilitySpec(long, v!));
    st.cl.set.add('capability');
  },
});

const boolean = (long: string, field: 'notifyReady' | 'suppressSync' | 'noNewPrivileges', group: SettingKey): OptionDef => ({
  long,
  arg: 'required',
  apply: (st, v) => put(st, field, bool(long, v!), group),
});

// ---------------------------------------------------------------------------------------------------------------
// the table

export const OPTIONS: readonly OptionDef[] = [
  { long: 'help', short: 'h', arg: 'none', apply: (st) => void (st.cl.help = true) },
  { long: 'version', arg: 'none', apply: (st) => void (st.cl.version = true) },
  { long: 'directory', short: 'D', arg: 'required', apply: (st, v) => put(st, 'directory', resolve(st.cwd, v!), 'directory') },
  { long: 'template', arg: 'required', apply: (st, v) => put(st, 'template', resolve(st.cwd, v!)) },
  { long: 'ephemeral', short: 'x', arg: 'none', apply: (st) => put(st, 'ephemeral', true, 'ephemeral') },
  { long: 'user', short: 'u', arg: 'required', apply: (st, v) => put(st, 'user', v!, 'user') },
  { long: 'private-network', arg: 'none', apply: (st) => put(st, 'privateNetwork', true, 'network') },
  { long: 'as-pid2', short: 'a', arg: 'none', apply: (st) => startMode(st, 'pid2') },
  { long: 'boot', short: 'b', arg: 'none', apply: (st) => startMode(st, 'boot') },
  {
    long: 'uuid',
    arg: 'required',
    apply: (st, v) => {
      let id: string;
      try {
        id = parseId128(v!);
      } catch {
        throw new SettingsError(`Invalid UUID: ${v}`, '--uuid', v);
      }
      if (id128IsNull(id)) throw new SettingsError('Machine UUID may not be all zeroes.', '--uuid', v);
      st.cl.settings.uuid = id128ToUuid(id);
      put(st, 'machineId', id, 'machine-id');
    },
  },
  { long: 'read-only', arg: 'none', apply: (st) => put(st, 'readOnly', true, 'read-only') },
  capabilities('capability', 'capability'),
  capabilities('ambient-capability', 'ambientCapability'),
  capabilities('drop-capability', 'dropCapability'),
  boolean('no-new-privileges', 'noNewPrivileges', 'no-new-privileges'),
  {
    long: 'link-journal',
    arg: 'required',
    apply: (st, v) => {
      const lj = wrap('link-journal', v!, parseLinkJournal);
      st.cl.settings.linkJournal = lj.mode;
      put(st, 'linkJournalTry', lj.try, 'link-journal');
    },
  },
  { long: 'bind', arg: 'required', apply: (st, v) => addMount(st, bind(v!, false, st)) },
  { long: 'bind-ro', arg: 'required', apply: (st, v) => addMount(st, bind(v!, true, st)) },
  {
    long: 'tmpfs',
    arg: 'required',
    apply: (st, v) => addMount(st, must(tmpfsMountParse(v!), '--tmpfs', v!, `Failed to parse --tmpfs= argument ${v}`)),
  },
  { long: 'overlay', arg: 'required', apply: (st, v) => addMount(st, overlay(v!, false, st)) },
  { long: 'overlay-ro', arg: 'required', apply: (st, v) => addMount(st, overlay(v!, true, st)) },
  {
    long: 'inaccessible',
    arg: 'required',
    apply: (st, v) => addMount(st, must(inaccessibleMountParse(v!), '--inaccessible', v!, `Failed to parse --inaccessible= argument ${v}`)),
  },
  {
    long: 'machine',
    short: 'M',
    arg: 'required',
    apply: (st, v) => {
      if (v !== '' && !hostnameIsValid(v!)) throw new SettingsError(`Invalid machine name: ${v}`, '--machine', v);
      put(st, 'machineName', v === '' ? UNSET : v!);
    },
  },
  {
    long: 'hostname',
    arg: 'required',
    apply: (st, v) => {
      if (v !== '' && !hostnameIsValid(v!)) throw new SettingsError(`Invalid hostname: ${v}`, '--hostname', v);
      put(st, 'hostname', v === '' ? UNSET : v!, 'hostname');
    },
  },
  // --slice= and --property=: the machine's scope (on a host without systemd the cgroup nspawn makes: @nspawn/assembly)
  { long: 'slice', short: 'S', arg: 'required', apply: (st, v) => put(st, 'slice', v!, 'slice') },
  {
    long: 'setenv',
    short: 'E',
    arg: 'required',
    apply: (st, v) => {
      let a = v!;
      if (!a.includes('=')) {
        const val = st.environ[a];
        if (val === undefined) return; // systemd: NAME without a value in our environment is skipped
        a = `${a}=${val}`;
      }
      wrap('setenv', a, parseEnvAssignment);
      const envList = list(st.cl.settings, 'environment') as string[];
      const name = a.slice(0, a.indexOf('='));
      const i = envList.findIndex((e) => e.startsWith(`${name}=`));
      if (i >= 0) envList.splice(i, 1);
      envList.push(a);
      st.cl.set.add('environment');
    },
  },
  unsupported('selinux-context', 'required', 'Z'),
  unsupported('selinux-apifs-context', 'required', 'L'),
  { long: 'quiet', short: 'q', arg: 'none', apply: (st) => put(st, 'quiet', true) },
  {
    // not documented by 252, kept for compatibility: the three namespaces shared, without recording
    // 'clone-ns-flags' (an OCI bundle's linux.namespaces still replace it, as 252's arg_clone_ns_flags = 0 does)
    long: 'share-system',
    arg: 'none',
    apply: (st) => {
      st.warn('Please do not use --share-system anymore, use $SYSTEMD_NSPAWN_SHARE_* instead.');
      st.cl.settings.sharedNamespaces = ['ipc', 'pid', 'uts'];
    },
  },
  { long: 'register', arg: 'required', apply: (st, v) => put(st, 'register', bool('register', v!)) },
  { long: 'keep-unit', arg: 'none', apply: (st) => put(st, 'keepUnit', true) },
  networkList('network-interface', 'networkInterfaces'),
  networkList('network-macvlan', 'networkMacvlan'),
  networkList('network-ipvlan', 'networkIpvlan'),
  { long: 'network-veth', short: 'n', arg: 'none', apply: (st) => veth(st) },
  networkList('network-veth-extra', 'networkVethExtra'),
  {
    long: 'network-bridge',
    arg: 'required',
    apply: (st, v) => {
      if (!ifnameValid(v!)) throw new SettingsError(`Bridge interface name not valid: ${v}`, '--network-bridge', v);
      veth(st, 'networkBridge', v);
    },
  },
  {
    long: 'network-zone',
    arg: 'required',
    apply: (st, v) => {
      if (!ifnameValid(`vz-${v}`)) throw new SettingsError(`Network zone name not valid: vz-${v}`, '--network-zone', v);
      veth(st, 'networkZone', v);
    },
  },
  { long: 'network-namespace-path', arg: 'required', apply: (st, v) => put(st, 'networkNamespacePath', resolve(st.cwd, v!), 'network') },
  { long: 'personality', arg: 'required', apply: (st, v) => put(st, 'personality', wrap('personality', v!, parsePersonality), 'personality') },
  { long: 'image', short: 'i', arg: 'required', apply: (st, v) => put(st, 'image', resolve(st.cwd, v!)) },
  // systemd 254's: matched by its full name only, so that 252's abbreviations (--imag) stay as they were
  { long: 'image-policy', arg: 'required', exact: true, apply: (st, v) => put(st, 'imagePolicy', v!) },
  {
    long: 'volatile',
    arg: 'optional',
    apply: (st, v) => put(st, 'volatile', v === undefined ? 'yes' : wrap('volatile', v, parseVolatileMode), 'volatile-mode'),
  },
  {
    long: 'port',
    short: 'p',
    arg: 'required',
    apply: (st, v) => {
      (list(st.cl.settings, 'exposePorts') as unknown[]).push(must(exposePortParse(v!), '--port', v!, `Failed to parse host port ${v}`));
      st.cl.set.add('expose-ports');
    },
  },
  { long: 'property', arg: 'required', apply: (st, v) => void (list(st.cl.settings, 'properties') as string[]).push(v!) },
  {
    long: 'private-users',
    arg: 'optional',
    apply: (st, v) => put(st, 'privateUsers', v === undefined ? { mode: 'pick' } : wrap('private-users', v, parsePrivateUsers), 'userns'),
  },
  { long: 'private-users-chown', arg: 'optional', apply: (st) => put(st, 'privateUsersOwnership', 'chown', 'userns') },
  {
    long: 'private-users-ownership',
    arg: 'required',
    apply: (st, v) => put(st, 'privateUsersOwnership', wrap('private-users-ownership', v!, parseUserNsOwnership), 'userns'),
  },
  {
    long: 'kill-signal',
    arg: 'required',
    apply: (st, v) => {
      const r = signalFromString(v!);
      if (!r.ok) throw new SettingsError(`Cannot parse signal: ${v}`, '--kill-signal', v);
      put(st, 'killSignal', r.value, 'kill-signal');
    },
  },
  {
    long: 'settings',
    arg: 'required',
    apply: (st, v) => put(st, 'settingsMode', v === 'trusted' || v === 'override' ? v : bool('settings', v!) ? 'yes' : 'no'),
  },
  {
    long: 'chdir',
    arg: 'required',
    apply: (st, v) => {
      if (!v!.startsWith('/')) throw new SettingsError(`Working directory ${v} is not an absolute path.`, '--chdir', v);
      put(st, 'workingDirectory', v!, 'working-directory');
    },
  },
  {
    long: 'pivot-root',
    arg: 'required',
    apply: (st, v) => put(st, 'pivotRoot', must(pivotRootParse(v!), '--pivot-root', v!, `Failed to parse --pivot-root= argument ${v}`), 'pivot-root'),
  },
  boolean('notify-ready', 'notifyReady', 'notify-ready'),
  unsupported('root-hash', 'required'),
  unsupported('root-hash-sig', 'required'),
  unsupported('verity-data', 'required'),
  {
    long: 'system-call-filter',
    arg: 'required',
    apply: (st, v) => {
      const f = (st.cl.settings.systemCallFilter ??= { allow: [], deny: [] });
      const r = syscallFilterWords(v!);
      if (!r.ok) throw new SettingsError('Failed to parse system call filter: Invalid argument', '--system-call-filter', v);
      (r.deny ? f.deny : f.allow).push(...r.names);
      st.cl.set.add('syscall-filter');
    },
  },
  {
    long: 'rlimit',
    arg: 'required',
    apply: (st, v) => {
      const eq = v!.indexOf('=');
      if (eq < 0) throw new SettingsError(`Resource limit lacks '=': ${v}`, '--rlimit', v);
      const name = parseRlimitName(v!.slice(0, eq));
      const r = rlimitParse(name, v!.slice(eq + 1));
      if (!r.ok) throw new SettingsError(`Failed to parse resource limit: ${v!.slice(eq + 1)}`, '--rlimit', v);
      (st.cl.settings.rlimits ??= {})[name] = r.value;
      st.cl.set.add(`rlimit-${name}`);
    },
  },
  {
    long: 'oom-score-adjust',
    arg: 'required',
    apply: (st, v) => {
      const r = parseOomScoreAdjust(v!);
      if (!r.ok) throw new SettingsError(`Failed to parse --oom-score-adjust= parameter: ${v}`, '--oom-score-adjust', v);
      put(st, 'oomScoreAdjust', r.value, 'oom-score-adjust');
    },
  },
  {
    long: 'cpu-affinity',
    arg: 'required',
    apply: (st, v) => {
      const r = parseCpuSet(v!);
      // no CPU at all ("", or only separators) is the empty set: it resets the affinity (parse_cpu_set() accepts it)
      if (r.cpus === undefined && r.warnings.length === 0) put(st, 'cpuAffinity', UNSET, 'cpu-affinity');
      else if (r.cpus === undefined) throw new SettingsError(`Failed to parse CPU affinity '${v}'`, '--cpu-affinity', v);
      else put(st, 'cpuAffinity', r.cpus, 'cpu-affinity');
    },
  },
  { long: 'resolv-conf', arg: 'required', apply: (st, v) => put(st, 'resolvConf', wrap('resolv-conf', v!, parseResolvConfMode), 'resolv-conf') },
  { long: 'timezone', arg: 'required', apply: (st, v) => put(st, 'timezone', wrap('timezone', v!, parseTimezoneMode), 'timezone') },
  { long: 'console', arg: 'required', apply: (st, v) => put(st, 'consoleMode', wrap('console', v!, parseConsoleMode), 'console-mode') },
  { long: 'pipe', short: 'P', arg: 'none', apply: (st) => put(st, 'consoleMode', 'pipe', 'console-mode') },
  { long: 'oci-bundle', arg: 'required', apply: (st, v) => put(st, 'ociBundle', resolve(st.cwd, v!)) },
  { long: 'no-pager', arg: 'none', apply: () => {} },
  {
    long: 'set-credential',
    arg: 'required',
    apply: (st, v) => {
      const list = (st.cl.settings.credentials ??= []);
      list.push(parseSetCredential(v!, list));
      st.cl.set.add('credentials');
    },
  },
  {
    long: 'load-credential',
    arg: 'required',
    apply: (st, v) => {
      const list = (st.cl.settings.credentials ??= []);
      list.push(parseLoadCredential(v!, list, st.environ));
      st.cl.set.add('credentials');
    },
  },
  {
    long: 'bind-user',
    arg: 'required',
    apply: (st, v) => {
      if (!validUserGroupName(v!)) throw new SettingsError(`Invalid user name to bind: ${v}`, '--bind-user', v);
      (list(st.cl.settings, 'bindUser') as string[]).push(v!);
      st.cl.set.add('bind-user');
    },
  },
  boolean('suppress-sync', 'suppressSync', 'suppress-sync'),
  // the letters without a long name
  {
    long: 'j',
    short: 'j',
    arg: 'none',
    apply: (st) => {
      st.cl.settings.linkJournal = 'guest';
      put(st, 'linkJournalTry', true, 'link-journal');
    },
  },
  {
    long: 'U',
    short: 'U',
    arg: 'none',
    apply: (st) => {
      st.sawU = true;
      put(st, 'privateUsers', { mode: 'pick' }, 'userns');
    },
  },
];
