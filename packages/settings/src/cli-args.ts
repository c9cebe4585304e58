/**
 * systemd-nspawn's command line (parse_argv() in src/nspawn/nspawn.c, v252) into the Settings model: getopt_long()
 * with "+" (options end at the first non-option) over the option table of cli-options.ts, `--OPTION=help`, and the
 * checks systemd makes once all options are read. It records which setting groups the command line set (systemd's
 * arg_settings_mask), so that a .nspawn file can fill in the rest.
 */
import { CAPABILITIES } from './capabilities.js';
import { type CommandLine, OPTIONS, type OptionDef, type ParseState } from './cli-options.js';
import { getopt, getoptTable } from './getopt.js';
import { RESOLV_CONF_MODES, TIMEZONE_MODES, VOLATILE_MODES } from './grammar.js';
import { RLIMIT_NAMES, type SharedNamespace, SettingsError } from './model.js';
import { parseBoolean } from './values.js';
import { SIGRTMAX, SIGRTMIN, signalName } from './signals.js';

export type { CommandLine } from './cli-options.js';

/** The values `--OPTION=help` lists, in systemd-nspawn 252's order. */
const HELP_LISTS: Record<string, () => string[]> = {
  console: () => ['autopipe', 'interactive', 'passive', 'pipe', 'read-only'],
  volatile: () => [...VOLATILE_MODES],
  // 252 has no 'foreign'
  'private-users-ownership': () => ['off', 'chown', 'map', 'auto'],
  'kill-signal': () => Array.from({ length: SIGRTMAX + 1 }, (_, i) => (i >= SIGRTMIN ? `RTMIN+${i - SIGRTMIN}` : i === 0 ? '0' : signalName(i))),
  rlimit: () => [...RLIMIT_NAMES],
  'resolv-conf': () => [...RESOLV_CONF_MODES],
  timezone: () => [...TIMEZONE_MODES],
  capability: () => CAPABILITIES.map((c) => `cap_${c}`),
  'drop-capability': () => CAPABILITIES.map((c) => `cap_${c}`),
  'ambient-capability': () => CAPABILITIES.map((c) => `cap_${c}`),
};

/** getopt's view of the table: the letters without a long name (-j, -U) have none */
const TABLE = getoptTable(OPTIONS.map((o) => (o.long.length > 1 ? o : { ...o, long: undefined })));

/** All long option names, for completions and --help tests. */
export const LONG_OPTIONS: readonly string[] = OPTIONS.filter((o) => o.long.length > 1).map((o) => o.long);

/**
 * The option table (long name, short letter, whether it takes a value), for completions and man pages, in
 * systemd-nspawn's order; an option with only a letter has the letter as its long name.
 */
export const COMMAND_LINE_OPTIONS: readonly { long: string; short?: string; arg: 'none' | 'required' | 'optional'; refused?: true; exact?: true }[] =
  OPTIONS.map(({ long, short, arg, refused, exact }) => ({ long, ...(short ? { short } : {}), arg, ...(refused ? { refused } : {}), ...(exact ? { exact } : {}) }));

/**
 * The options this build parses and then refuses (their feature is not built): "--long" (and "-x" for a letter),
 * from the parser's table. Help, man page and completions must not offer them as working options.
 */
export const REFUSED_OPTIONS: readonly string[] = OPTIONS.filter((o) => o.refused).flatMap((o) => [
  o.long.length > 1 ? `--${o.long}` : `-${o.long}`,
  ...(o.short && o.long.length > 1 ? [`-${o.short}`] : []),
]);

/**
 * Parses argv (without the program name) like systemd-nspawn: getopt_long() with "+" (options stop at the first
 * non-option, `--` ends them, unique prefixes of long options are accepted), each option acted on in order.
 * `--help` and `--version` end the parsing there, as `--OPTION=help` does. Throws SettingsError naming the option
 * and the value on bad input (OptionError, a SettingsError, for what getopt itself refuses).
 */
export function parseCommandLine(
  argv: readonly string[],
  env: { cwd?: string; environ?: NodeJS.ProcessEnv; warn?: (message: string) => void } = {},
): CommandLine {
  const cl: CommandLine = { settings: {}, set: new Set(), help: false, version: false, unsupported: [], warnings: [] };
  const warn = (message: string) => {
    cl.warnings.push(message);
    env.warn?.(message);
  };
  const st: ParseState = { cl, cwd: env.cwd ?? process.cwd(), environ: env.environ ?? process.env, sawU: false, warn };
  const it = getopt(argv, TABLE, 'require-order');
  for (;;) {
    const n = it.next();
    if (n.done) {
      const rest = n.value;
      if (rest.length > 0) {
        cl.settings.parameters = rest;
        cl.set.add('start-mode');
      }
      break;
    }
    if (n.value.kind !== 'option') continue;
    const { option, value } = n.value as { option: OptionDef; value: string | undefined };
    if (value === 'help' && HELP_LISTS[option.long]) {
      cl.listing = HELP_LISTS[option.long]!();
      return cl;
    }
    option.apply(st, value);
    if (option.refused) {
      const name = option.long.length > 1 ? `--${option.long}` : `-${option.long}`;
      if (!cl.unsupported.includes(name)) cl.unsupported.push(name);
    }
    if (cl.help || cl.version) return cl;
  }
  finish(st);
  return cl;
}

/**
 * parse_environment()'s namespace variables, in its order: each one set is a boolean (parse_boolean(): "1", "yes",
 * "y", "true", "t", "on" or their opposites, any case) that shares (true) or unshares (false) its namespaces, and
 * keeps an OCI bundle's linux.namespaces out ('clone-ns-flags'); a later one wins over an earlier one.
 */
const SHARE_NS_ENVIRONMENT: ReadonlyArray<readonly [string, readonly SharedNamespace[]]> = [
  ['SYSTEMD_NSPAWN_SHARE_NS_IPC', ['ipc']],
  ['SYSTEMD_NSPAWN_SHARE_NS_PID', ['pid']],
  ['SYSTEMD_NSPAWN_SHARE_NS_UTS', ['uts']],
  ['SYSTEMD_NSPAWN_SHARE_SYSTEM', ['ipc', 'pid', 'uts']],
];

/** parse_share_ns_env() for each variable, after the options (and --share-system) were read */
function parseShareNsEnvironment(st: ParseState) {
  const s = st.cl.settings;
  for (const [name, namespaces] of SHARE_NS_ENVIRONMENT) {
    const v = st.environ[name];
    if (v === undefined) continue;
    let share: boolean;
    try {
      share = parseBoolean(v);
    } catch {
      throw new SettingsError(`Failed to parse $${name}: Invalid argument`, `$${name}`, v);
    }
    const shared = new Set(s.sharedNamespaces);
    for (const n of namespaces) if (share) shared.add(n);
    else shared.delete(n);
    const ordered = (['ipc', 'pid', 'uts'] as const).filter((n) => shared.has(n));
    if (ordered.length) s.sharedNamespaces = ordered;
    else delete s.sharedNamespaces;
    st.cl.set.add('clone-ns-flags');
  }
}

/** The checks of parse_argv() after the options loop (its environment first), and some of verify_arguments(). */
function finish(st: ParseState) {
  parseShareNsEnvironment(st);
  const s = st.cl.settings;
  if (st.sawU && s.privateUsersOwnership === undefined) s.privateUsersOwnership = 'auto';
  if (s.directory && s.image) throw new SettingsError('Please specify either --directory= or --image=, the combination of both is not supported.', '--image');
  if (s.template && s.ephemeral)
    throw new SettingsError('Please specify either --template= or --ephemeral, but not both.', '--template');
  if (s.template && s.image) throw new SettingsError('--template= and --image= may not be combined.', '--template');
  if (s.exposePorts && !s.privateNetwork && !s.networkNamespacePath)
    throw new SettingsError('Cannot use --port= without private networking.', '--port');
  if (s.networkNamespacePath && (s.privateNetwork || s.networkVeth))
    throw new SettingsError(
      'Cannot combine --network-namespace-path= with --private-network, --network-veth, --network-zone=, --network-bridge=, ...',
      '--network-namespace-path',
    );
}
