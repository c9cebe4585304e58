/**
 * systemd-nspawn's command line (parse_argv() in src/nspawn/nspawn.c, v252) into the Settings model,
 * with a record of which setting groups the command line set (systemd's arg_settings_mask), so that a
 * .nspawn file can fill in the rest.
 */
import { resolve } from 'node:path';
import { type CustomMount, RLIMIT_NAMES, type SettingKey, type Settings, SettingsError } from './model.js';
import {
  hostnameIsValid,
  parseBoolean,
  parseConsoleMode,
  parseEnvAssignment,
  parseId128,
  parseLinkJournal,
  parsePersonality,
  parsePrivateUsers,
  parseResolvConfMode,
  parseRlimitName,
  parseTimezoneMode,
  parseUserNsOwnership,
  parseVolatileMode,
  id128ToUuid,
  CAPABILITIES,
  RESOLV_CONF_MODES,
  SIGRTMAX,
  SIGRTMIN,
  signalName,
  TIMEZONE_MODES,
} from './values.js';
import {
  bindMountParse,
  capabilityFromName,
  errnoText,
  exposePortParse,
  ifnameValid,
  inaccessibleMountParse,
  overlayMountParse,
  parseCpuSet,
  parseOomScoreAdjust,
  pivotRootParse,
  rlimitParse,
  signalFromString,
  tmpfsMountParse,
} from './systemd-values.js';
import type { Result } from './c-util.js';

export interface CommandLine {
  settings: Settings;
  /** setting groups the command line set (systemd's arg_settings_mask): a .nspawn file fills in the rest */
  set: Set<SettingKey>;
  help: boolean;
  version: boolean;
  /** options that were accepted but whose feature this build does not implement; the runtime refuses them */
  unsupported: string[];
  /** `--OPTION=help`: the accepted values, to print (one a line) instead of running */
  listing?: string[];
}

/** The values `--OPTION=help` lists, in systemd-nspawn's order. */
const HELP_LISTS: Record<string, () => string[]> = {
  console: () => ['autopipe', 'interactive', 'passive', 'pipe', 'read-only'],
  volatile: () => ['no', 'yes', 'state', 'overlay'],
  'private-users-ownership': () => ['off', 'chown', 'map', 'auto'],
  'kill-signal': () => Array.from({ length: SIGRTMAX + 1 }, (_, i) => (i >= SIGRTMIN ? `RTMIN+${i - SIGRTMIN}` : i === 0 ? '0' : signalName(i))),
  rlimit: () => [...RLIMIT_NAMES],
  'resolv-conf': () => [...RESOLV_CONF_MODES],
  timezone: () => [...TIMEZONE_MODES],
  capability: () => CAPABILITIES.map((c) => `cap_${c}`),
  'drop-capability': () => CAPABILITIES.map((c) => `cap_${c}`),
  'ambient-capability': () => CAPABILITIES.map((c) => `cap_${c}`),
};

type ArgKind = 'none' | 'required' | 'optional';
interface OptionDef {
  long: string;
  short?: string;
  arg: ArgKind;
  apply: (cl: CommandLine, value: string | undefined, env: ParseEnv) => void;
}
interface ParseEnv {
  cwd: string;
  environ: NodeJS.ProcessEnv;
}

const list = <K extends keyof Settings>(s: Settings, k: K) => ((s[k] ??= [] as never) as unknown as unknown[]);

function addMount(cl: CommandLine, m: CustomMount) {
  (cl.settings.customMounts ??= []).push(m);
  cl.set.add('custom-mounts');
}

function bool(opt: string, v: string): boolean {
  try {
    return parseBoolean(v);
  } catch {
    throw new SettingsError(`Failed to parse --${opt}= argument: ${v}`, `--${opt}`, v);
  }
}

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

function bind(v: string, readOnly: boolean, env: ParseEnv): CustomMount {
  const r = bindMountParse(v, readOnly, env.cwd);
  if (!r.ok) throw new SettingsError(`Failed to parse --bind(-ro)= argument ${v}: ${r.why}`, readOnly ? '--bind-ro' : '--bind', v);
  return r.value;
}

function overlay(v: string, readOnly: boolean, env: ParseEnv): CustomMount {
  const r = overlayMountParse(v, readOnly, env.cwd);
  if (!r.ok && r.errno === 'EADDRNOTAVAIL')
    throw new SettingsError('--overlay(-ro)= needs at least two colon-separated directories specified.', '--overlay', v);
  return must(r, readOnly ? '--overlay-ro' : '--overlay', v, `Failed to parse --overlay(-ro)= argument ${v}`);
}

/** --network-interface= and friends: each adds a link and implies a private network. */
function networkList(long: string, field: 'networkInterfaces' | 'networkMacvlan' | 'networkIpvlan' | 'networkVethExtra'): OptionDef {
  return {
    long,
    arg: 'required',
    apply: (cl, v) => {
      (list(cl.settings, field) as string[]).push(v!);
      cl.settings.privateNetwork = true;
      cl.set.add('network');
    },
  };
}

/** Options accepted for compatibility that have nothing to do on this host, or features not built yet. */
function unsupported(name: string): OptionDef['apply'] {
  return (cl) => {
    if (!cl.unsupported.includes(name)) cl.unsupported.push(name);
  };
}

const OPTIONS: OptionDef[] = [
  { long: 'help', short: 'h', arg: 'none', apply: (cl) => void (cl.help = true) },
  { long: 'version', arg: 'none', apply: (cl) => void (cl.version = true) },
  {
    long: 'directory',
    short: 'D',
    arg: 'required',
    apply: (cl, v, env) => {
      cl.settings.directory = resolve(env.cwd, v!);
      cl.set.add('directory');
    },
  },
  { long: 'template', arg: 'required', apply: (cl, v, env) => void (cl.settings.template = resolve(env.cwd, v!)) },
  {
    long: 'ephemeral',
    short: 'x',
    arg: 'none',
    apply: (cl) => {
      cl.settings.ephemeral = true;
      cl.set.add('ephemeral');
    },
  },
  { long: 'image', short: 'i', arg: 'required', apply: (cl, v, env) => void (cl.settings.image = resolve(env.cwd, v!)) },
  { long: 'oci-bundle', arg: 'required', apply: unsupported('--oci-bundle') },
  {
    long: 'read-only',
    arg: 'none',
    apply: (cl) => {
      cl.settings.readOnly = true;
      cl.set.add('read-only');
    },
  },
  {
    long: 'volatile',
    arg: 'optional',
    apply: (cl, v) => {
      cl.settings.volatile = v === undefined ? 'yes' : wrap('volatile', v, parseVolatileMode);
      cl.set.add('volatile-mode');
    },
  },
  { long: 'root-hash', arg: 'required', apply: unsupported('--root-hash') },
  { long: 'root-hash-sig', arg: 'required', apply: unsupported('--root-hash-sig') },
  { long: 'verity-data', arg: 'required', apply: unsupported('--verity-data') },
  {
    long: 'pivot-root',
    arg: 'required',
    apply: (cl, v) => {
      cl.settings.pivotRoot = must(pivotRootParse(v!), '--pivot-root', v!, `Failed to parse --pivot-root= argument ${v}`);
      cl.set.add('pivot-root');
    },
  },
  {
    long: 'as-pid2',
    short: 'a',
    arg: 'none',
    apply: (cl) => {
      cl.settings.startMode = 'pid2';
      cl.set.add('start-mode');
      (cl as CommandLine & { sawPid2?: boolean }).sawPid2 = true;
    },
  },
  {
    long: 'boot',
    short: 'b',
    arg: 'none',
    apply: (cl) => {
      cl.settings.startMode = 'boot';
      cl.set.add('start-mode');
      (cl as CommandLine & { sawBoot?: boolean }).sawBoot = true;
    },
  },
  {
    long: 'chdir',
    arg: 'required',
    apply: (cl, v) => {
      if (!v!.startsWith('/')) throw new SettingsError(`Working directory ${v} is not an absolute path.`, '--chdir', v);
      cl.settings.workingDirectory = v!;
      cl.set.add('working-directory');
    },
  },
  {
    long: 'setenv',
    short: 'E',
    arg: 'required',
    apply: (cl, v, env) => {
      let a = v!;
      if (!a.includes('=')) {
        const val = env.environ[a];
        if (val === undefined) return; // systemd: NAME without a value in our environment is skipped
        a = `${a}=${val}`;
      }
      wrap('setenv', a, parseEnvAssignment);
      const envList = list(cl.settings, 'environment') as string[];
      const name = a.slice(0, a.indexOf('='));
      const i = envList.findIndex((e) => e.startsWith(`${name}=`));
      if (i >= 0) envList.splice(i, 1);
      envList.push(a);
      cl.set.add('environment');
    },
  },
  {
    long: 'user',
    short: 'u',
    arg: 'required',
    apply: (cl, v) => {
      cl.settings.user = v!;
      cl.set.add('user');
    },
  },
  {
    long: 'kill-signal',
    arg: 'required',
    apply: (cl, v) => {
      const r = signalFromString(v!);
      if (!r.ok) throw new SettingsError(`Cannot parse signal: ${v}`, '--kill-signal', v);
      cl.settings.killSignal = r.value;
      cl.set.add('kill-signal');
    },
  },
  {
    long: 'notify-ready',
    arg: 'required',
    apply: (cl, v) => {
      cl.settings.notifyReady = bool('notify-ready', v!);
      cl.set.add('notify-ready');
    },
  },
  {
    long: 'suppress-sync',
    arg: 'required',
    apply: (cl, v) => {
      cl.settings.suppressSync = bool('suppress-sync', v!);
      cl.set.add('suppress-sync');
    },
  },
  {
    long: 'machine',
    short: 'M',
    arg: 'required',
    apply: (cl, v) => {
      if (v === '') {
        delete cl.settings.machineName;
        return;
      }
      if (!hostnameIsValid(v!)) throw new SettingsError(`Invalid machine name: ${v}`, '--machine', v);
      cl.settings.machineName = v!;
    },
  },
  {
    long: 'hostname',
    arg: 'required',
    apply: (cl, v) => {
      if (v !== '' && !hostnameIsValid(v!)) throw new SettingsError(`Invalid hostname: ${v}`, '--hostname', v);
      if (v === '') delete cl.settings.hostname;
      else cl.settings.hostname = v!;
      cl.set.add('hostname');
    },
  },
  {
    long: 'uuid',
    arg: 'required',
    apply: (cl, v) => {
      let id: string;
      try {
        id = parseId128(v!);
      } catch {
        throw new SettingsError(`Invalid UUID: ${v}`, '--uuid', v);
      }
      if (/^0+$/.test(id)) throw new SettingsError('Machine UUID may not be all zeroes.', '--uuid', v);
      cl.settings.uuid = id128ToUuid(id);
      cl.settings.machineId = id;
      cl.set.add('machine-id');
    },
  },
  { long: 'slice', short: 'S', arg: 'required', apply: unsupported('--slice') },
  { long: 'property', arg: 'required', apply: unsupported('--property') },
  {
    long: 'register',
    arg: 'required',
    apply: (cl, v) => void (cl.settings.register = bool('register', v!)),
  },
  { long: 'keep-unit', arg: 'none', apply: (cl) => void (cl.settings.keepUnit = true) },
  {
    long: 'private-users',
    arg: 'optional',
    apply: (cl, v) => {
      cl.settings.privateUsers = v === undefined ? { mode: 'pick' } : wrap('private-users', v, parsePrivateUsers);
      cl.set.add('userns');
    },
  },
  {
    long: 'private-users-ownership',
    arg: 'required',
    apply: (cl, v) => {
      cl.settings.privateUsersOwnership = wrap('private-users-ownership', v!, parseUserNsOwnership);
      cl.set.add('userns');
    },
  },
  {
    long: 'private-users-chown',
    arg: 'optional',
    apply: (cl) => {
      cl.settings.privateUsersOwnership = 'chown';
      cl.set.add('userns');
    },
  },
  {
    long: 'U',
    short: 'U',
    arg: 'none',
    apply: (cl) => {
      cl.settings.privateUsers = { mode: 'pick' };
      (cl as CommandLine & { sawU?: boolean }).sawU = true;
      cl.set.add('userns');
    },
  },
  {
    long: 'private-network',
    arg: 'none',
    apply: (cl) => {
      cl.settings.privateNetwork = true;
      cl.set.add('network');
    },
  },
  networkList('network-interface', 'networkInterfaces'),
  networkList('network-macvlan', 'networkMacvlan'),
  networkList('network-ipvlan', 'networkIpvlan'),
  {
    long: 'network-veth',
    short: 'n',
    arg: 'none',
    apply: (cl) => {
      cl.settings.networkVeth = true;
      cl.settings.privateNetwork = true;
      cl.set.add('network');
    },
  },
  networkList('network-veth-extra', 'networkVethExtra'),
  {
    long: 'network-bridge',
    arg: 'required',
    apply: (cl, v) => {
      if (!ifnameValid(v!)) throw new SettingsError(`Bridge interface name not valid: ${v}`, '--network-bridge', v);
      cl.settings.networkBridge = v!;
      cl.settings.networkVeth = true;
      cl.settings.privateNetwork = true;
      cl.set.add('network');
    },
  },
  {
    long: 'network-zone',
    arg: 'required',
    apply: (cl, v) => {
      if (!ifnameValid(`vz-${v}`)) throw new SettingsError(`Network zone name not valid: vz-${v}`, '--network-zone', v);
      cl.settings.networkZone = v!;
      cl.settings.networkVeth = true;
      cl.settings.privateNetwork = true;
      cl.set.add('network');
    },
  },
  {
    long: 'network-namespace-path',
    arg: 'required',
    apply: (cl, v, env) => {
      cl.settings.networkNamespacePath = resolve(env.cwd, v!);
      cl.set.add('network');
    },
  },
  {
    long: 'port',
    short: 'p',
    arg: 'required',
    apply: (cl, v) => {
      (list(cl.settings, 'exposePorts') as unknown[]).push(must(exposePortParse(v!), '--port', v!, `Failed to parse host port ${v}`));
      cl.set.add('expose-ports');
    },
  },
  {
    long: 'capability',
    arg: 'required',
    apply: (cl, v) => {
      (list(cl.settings, 'capability') as string[]).push(...capabilitySpec('capability', v!));
      cl.set.add('capability');
    },
  },
  {
    long: 'drop-capability',
    arg: 'required',
    apply: (cl, v) => {
      (list(cl.settings, 'dropCapability') as string[]).push(...capabilitySpec('drop-capability', v!));
      cl.set.add('capability');
    },
  },
  {
    long: 'ambient-capability',
    arg: 'required',
    apply: (cl, v) => {
      (list(cl.settings, 'ambientCapability') as string[]).push(...capabilitySpec('ambient-capability', v!));
      cl.set.add('capability');
    },
  },
  {
    long: 'no-new-privileges',
    arg: 'required',
    apply: (cl, v) => {
      cl.settings.noNewPrivileges = bool('no-new-privileges', v!);
      cl.set.add('no-new-privileges');
    },
  },
  {
    long: 'system-call-filter',
    arg: 'required',
    apply: (cl, v) => {
      const f = (cl.settings.systemCallFilter ??= { allow: [], deny: [] });
      const negative = v!.startsWith('~');
      const names = (negative ? v!.slice(1) : v!).split(/\s+/).filter((x) => x !== '');
      (negative ? f.deny : f.allow).push(...names);
      cl.set.add('syscall-filter');
    },
  },
  { long: 'selinux-context', short: 'Z', arg: 'required', apply: unsupported('--selinux-context') },
  { long: 'selinux-apifs-context', short: 'L', arg: 'required', apply: unsupported('--selinux-apifs-context') },
  {
    long: 'rlimit',
    arg: 'required',
    apply: (cl, v) => {
      const eq = v!.indexOf('=');
      if (eq < 0) throw new SettingsError(`Resource limit lacks '=': ${v}`, '--rlimit', v);
      const name = parseRlimitName(v!.slice(0, eq));
      const r = rlimitParse(name, v!.slice(eq + 1));
      if (!r.ok) throw new SettingsError(`Failed to parse resource limit: ${v!.slice(eq + 1)}`, '--rlimit', v);
      (cl.settings.rlimits ??= {})[name] = r.value;
      cl.set.add(`rlimit-${name}`);
    },
  },
  {
    long: 'oom-score-adjust',
    arg: 'required',
    apply: (cl, v) => {
      const r = parseOomScoreAdjust(v!);
      if (!r.ok) throw new SettingsError(`Failed to parse --oom-score-adjust= parameter: ${v}`, '--oom-score-adjust', v);
      cl.settings.oomScoreAdjust = r.value;
      cl.set.add('oom-score-adjust');
    },
  },
  {
    long: 'cpu-affinity',
    arg: 'required',
    apply: (cl, v) => {
      const r = parseCpuSet(v!);
      // no CPU at all ("", or only separators) is the empty set: it resets the affinity (parse_cpu_set() accepts it)
      if (r.cpus === undefined && r.warnings.length === 0) delete cl.settings.cpuAffinity;
      else if (r.cpus === undefined) throw new SettingsError(`Failed to parse CPU affinity '${v}'`, '--cpu-affinity', v);
      else cl.settings.cpuAffinity = r.cpus;
      cl.set.add('cpu-affinity');
    },
  },
  {
    long: 'personality',
    arg: 'required',
    apply: (cl, v) => {
      cl.settings.personality = wrap('personality', v!, parsePersonality);
      cl.set.add('personality');
    },
  },
  {
    long: 'resolv-conf',
    arg: 'required',
    apply: (cl, v) => {
      cl.settings.resolvConf = wrap('resolv-conf', v!, parseResolvConfMode);
      cl.set.add('resolv-conf');
    },
  },
  {
    long: 'timezone',
    arg: 'required',
    apply: (cl, v) => {
      cl.settings.timezone = wrap('timezone', v!, parseTimezoneMode);
      cl.set.add('timezone');
    },
  },
  {
    long: 'link-journal',
    arg: 'required',
    apply: (cl, v) => {
      const lj = wrap('link-journal', v!, parseLinkJournal);
      cl.settings.linkJournal = lj.mode;
      cl.settings.linkJournalTry = lj.try;
      cl.set.add('link-journal');
    },
  },
  {
    long: 'j',
    short: 'j',
    arg: 'none',
    apply: (cl) => {
      cl.settings.linkJournal = 'guest';
      cl.settings.linkJournalTry = true;
      cl.set.add('link-journal');
    },
  },
  { long: 'bind', arg: 'required', apply: (cl, v, env) => addMount(cl, bind(v!, false, env)) },
  { long: 'bind-ro', arg: 'required', apply: (cl, v, env) => addMount(cl, bind(v!, true, env)) },
  {
    long: 'tmpfs',
    arg: 'required',
    apply: (cl, v) => addMount(cl, must(tmpfsMountParse(v!), '--tmpfs', v!, `Failed to parse --tmpfs= argument ${v}`)),
  },
  { long: 'overlay', arg: 'required', apply: (cl, v, env) => addMount(cl, overlay(v!, false, env)) },
  { long: 'overlay-ro', arg: 'required', apply: (cl, v, env) => addMount(cl, overlay(v!, true, env)) },
  {
    long: 'inaccessible',
    arg: 'required',
    apply: (cl, v) => addMount(cl, must(inaccessibleMountParse(v!), '--inaccessible', v!, `Failed to parse --inaccessible= argument ${v}`)),
  },
  {
    long: 'bind-user',
    arg: 'required',
    apply: (cl, v) => {
      (list(cl.settings, 'bindUser') as string[]).push(v!);
      cl.set.add('bind-user');
    },
  },
  {
    long: 'console',
    arg: 'required',
    apply: (cl, v) => {
      cl.settings.consoleMode = wrap('console', v!, parseConsoleMode);
      cl.set.add('console-mode');
    },
  },
  {
    long: 'pipe',
    short: 'P',
    arg: 'none',
    apply: (cl) => {
      cl.settings.consoleMode = 'pipe';
      cl.set.add('console-mode');
    },
  },
  { long: 'set-credential', arg: 'required', apply: unsupported('--set-credential') },
  { long: 'load-credential', arg: 'required', apply: unsupported('--load-credential') },
  { long: 'quiet', short: 'q', arg: 'none', apply: (cl) => void (cl.settings.quiet = true) },
  { long: 'no-pager', arg: 'none', apply: () => {} },
  {
    long: 'settings',
    arg: 'required',
    apply: (cl, v) => {
      if (v === 'trusted' || v === 'override') cl.settings.settingsMode = v;
      else cl.settings.settingsMode = bool('settings', v!) ? 'yes' : 'no';
    },
  },
  { long: 'share-system', arg: 'none', apply: unsupported('--share-system') },
];

const BY_LONG = new Map(OPTIONS.filter((o) => o.long.length > 1).map((o) => [o.long, o]));
const BY_SHORT = new Map(OPTIONS.filter((o) => o.short).map((o) => [o.short!, o]));

/** All long option names, for completions and --help tests. */
export const LONG_OPTIONS: readonly string[] = [...BY_LONG.keys()];

/** The option table (long name, short letter, whether it takes a value), for completions and man pages. */
export const COMMAND_LINE_OPTIONS: readonly { long: string; short?: string; arg: 'none' | 'required' | 'optional' }[] = OPTIONS.map(
  ({ long, short, arg }) => (short ? { long, short, arg } : { long, arg }),
);

/**
 * Parses argv (without the program name) like getopt_long with "+" (options stop at the first
 * non-option). Throws SettingsError naming the option and the value on bad input.
 */
export function parseCommandLine(argv: readonly string[], env: Partial<ParseEnv> = {}): CommandLine {
  const penv: ParseEnv = { cwd: env.cwd ?? process.cwd(), environ: env.environ ?? process.env };
  const cl: CommandLine & { sawBoot?: boolean; sawPid2?: boolean; sawU?: boolean } = {
    settings: {},
    set: new Set(),
    help: false,
    version: false,
    unsupported: [],
  };
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      i++;
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      const def = BY_LONG.get(name);
      if (!def) throw new SettingsError(`unrecognized option '--${name}'`, `--${name}`);
      let value: string | undefined = eq < 0 ? undefined : a.slice(eq + 1);
      if (def.arg === 'none' && value !== undefined)
        throw new SettingsError(`option '--${name}' doesn't allow an argument`, `--${name}`, value);
      if (def.arg === 'required' && value === undefined) {
        if (i + 1 >= argv.length) throw new SettingsError(`option '--${name}' requires an argument`, `--${name}`);
        value = argv[++i]!;
      }
      if (value === 'help' && HELP_LISTS[name]) {
        cl.listing = HELP_LISTS[name]();
        break;
      }
      def.apply(cl, value, penv);
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      for (let k = 1; k < a.length; k++) {
        const c = a[k]!;
        const def = BY_SHORT.get(c);
        if (!def) throw new SettingsError(`invalid option -- '${c}'`, `-${c}`);
        if (def.arg === 'required') {
          let value = a.slice(k + 1);
          if (value === '') {
            if (i + 1 >= argv.length) throw new SettingsError(`option requires an argument -- '${c}'`, `-${c}`);
            value = argv[++i]!;
          }
          def.apply(cl, value, penv);
          break;
        }
        def.apply(cl, undefined, penv);
      }
      continue;
    }
    break; // first non-option: the command and its arguments
  }
  if (cl.listing) {
    const { sawBoot: _b, sawPid2: _p, sawU: _u, ...out } = cl;
    return out;
  }
  const rest = argv.slice(i);
  if (rest.length > 0) {
    cl.settings.parameters = [...rest];
    cl.set.add('start-mode');
  }
  finish(cl);
  const { sawBoot: _b, sawPid2: _p, sawU: _u, ...out } = cl;
  return out;
}

function finish(cl: CommandLine & { sawBoot?: boolean; sawPid2?: boolean; sawU?: boolean }) {
  const s = cl.settings;
  if (cl.sawBoot && cl.sawPid2) throw new SettingsError('--boot and --as-pid2 may not be combined.', '--boot');
  if (cl.sawU && s.privateUsersOwnership === undefined) s.privateUsersOwnership = 'auto';
  if (s.directory && s.image) throw new SettingsError('Please specify either --directory= or --image=, the combination of both is not supported.', '--image');
  if (s.template && s.ephemeral)
    throw new SettingsError('Please specify either --template= or --ephemeral, but not both.', '--template');
  if (s.template && s.image) throw new SettingsError('--template= and --image= may not be combined.', '--template');
  if (s.ephemeral && s.volatile && s.volatile !== 'no')
    throw new SettingsError('Cannot combine --ephemeral with --volatile=', '--volatile');
  if (s.exposePorts && !s.privateNetwork && !s.networkNamespacePath)
    throw new SettingsError('Cannot use --port= without private networking.', '--port');
  if (s.networkNamespacePath && (s.privateNetwork || s.networkVeth))
    throw new SettingsError(
      'Cannot combine --network-namespace-path= with --private-network, --network-veth, --network-zone=, --network-bridge=, ...',
      '--network-namespace-path',
    );
}
