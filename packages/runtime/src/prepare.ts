/**
 * From the merged Settings to a ContainerConfig: systemd-nspawn's checks and defaults (determine_names(),
 * the OS-tree check, console and kill-signal defaults, --user resolution), and a clear error for every
 * setting whose feature this build does not have yet.
 */
import { existsSync, lstatSync, statSync } from 'node:fs';
import { basename, join as pathJoin } from 'node:path';
import {
  bindMountOptionsError,
  formatDiagnostic,
  loadOciBundle,
  loadSettings,
  mergeOciBundle,
  mergeSettings,
  parseBoolean,
  type SettingKey,
  type Settings,
  type SettingsFs,
  type SharedNamespace,
  hostnameCleanup,
  hostnameIsValid,
  id128ToUuid,
  SIGRTMIN,
} from '@nspawn/settings';
import type { HelperConsole } from './protocol.js';
import type { ContainerConfig } from './plan.js';
import { isTerminal, type Tree } from './host.js';
import { resolveUser } from './users.js';
import { randomHex } from './random.js';
import { containerCapabilities, verifyAmbientCapabilities } from './caps.js';
import type { NetworkConfig } from './network-config.js';
import { ContainerError } from './errors.js';
import { type CredentialReader, loadCredentials } from './credentials.js';
import { ociRunOf, ociSharedNamespaces } from './oci-bundle.js';

/** os.hostname(), node:os loaded on use (a start that names its machine never needs it) */
const osHostname = (): string => process.getBuiltinModule('node:os').hostname();


export interface PrepareEnv {
  stdinIsTTY: boolean;
  stdoutIsTTY: boolean;
  /** the tree view for a directory (nodeTree in production) */
  tree(root: string): Tree;
  exists(path: string): boolean;
  /** SYSTEMD_NSPAWN_API_VFS_WRITABLE and friends */
  environ: NodeJS.ProcessEnv;
  hostname(): string;
  /** how --load-credential= files and sockets are read (default: nodeCredentialReader) */
  credentials?: CredentialReader;
}

export const nodePrepareEnv = (tree: (root: string) => Tree): PrepareEnv => ({
  // not process.stdin.isTTY nor tty.isatty(): they load the streams and net, which cost start-up time
  stdinIsTTY: isTerminal(0),
  stdoutIsTTY: isTerminal(1),
  tree,
  exists: (p) => {
    try {
      return lstatSync(p, { throwIfNoEntry: false }) !== undefined || existsSync(p);
    } catch {
      return existsSync(p);
    }
  },
  environ: process.env,
  hostname: osHostname,
});

/**
 * The tree is one to run: -b wants an OS (path_is_os_tree(): an os-release), anything else a /usr. Throws
 * systemd-nspawn's refusal naming DIRECTORY.
 */
export function verifyOsTree(tree: Pick<Tree, 'resolve' | 'isDirectory'>, directory: string, startMode: 'pid1' | 'pid2' | 'boot'): void {
  if (startMode === 'boot') {
    if (tree.resolve('/etc/os-release') === undefined && tree.resolve('/usr/lib/os-release') === undefined)
      throw new ContainerError(`Directory ${directory} doesn't look like an OS root directory (os-release file is missing). Refusing.`);
  } else if (!tree.isDirectory('/usr'))
    throw new ContainerError(`Directory ${directory} doesn't look like it has an OS tree (/usr/ directory is missing). Refusing.`);
}

/**
 * The directory a container of a disk image (-i) gets as its root: empty, the same for every such container, since
 * the image's file systems are mounted on it only in the container's own mount namespace (native/image.c).
 */
export const IMAGE_ROOT_DIRECTORY = '/run/nspawn/image-root';

/** Features parsed from the command line or a .nspawn file that later work will implement. */
function unsupportedFeatures(s: Settings): string[] {
  const out: string[] = [];
  const add = (cond: unknown, what: string) => {
    if (cond) out.push(what);
  };
  add(s.privateUsersOwnership === 'foreign' && s.privateUsers && s.privateUsers.mode !== 'no', '--private-users-ownership=foreign');
  return out;
}

/** is_seccomp_available(): $SYSTEMD_SECCOMP set to a false boolean turns systemd's seccomp filters off. */
function seccompDisabled(v: string | undefined): boolean {
  if (v === undefined) return false;
  try {
    return !parseBoolean(v);
  } catch {
    return false; // not a boolean: ignored, filters on
  }
}

/**
 * $NSPAWN_DEVICE_POLICY: "v1", "bpf" or "v1,bpf" force the cgroup mechanisms of the device policy (tests compare
 * them), "none" turns the policy off (as under systemd-nspawn --keep-unit --register=no); unset or empty: every
 * mechanism the host has.
 */
export function parseDevicePolicyEnv(v: string | undefined): Array<'v1' | 'bpf'> | undefined {
  if (v === undefined || v.trim() === '') return undefined;
  if (v.trim() === 'none') return [];
  const out: Array<'v1' | 'bpf'> = [];
  for (const w of v.split(',').map((x) => x.trim())) {
    if (w !== 'v1' && w !== 'bpf') throw new ContainerError(`Invalid $NSPAWN_DEVICE_POLICY=${v}: expected "v1", "bpf", "v1,bpf" or "none".`);
    if (!out.includes(w)) out.push(w);
  }
  return out;
}

/** sd_id128_randomize(): 128 random bits as 32 hex digits, marked as a v4 UUID like systemd's random IDs. */
export function randomId128(): string {
  const b = Buffer.from(randomHex(16), 'hex');
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  return b.toString('hex');
}

/**
 * setup_machine_id(): a machine ID in the tree's /etc/machine-id is the container's UUID (it wins over --uuid=);
 * a missing, empty or "uninitialized" file leaves the choice to --uuid= or chance.
 */
export function treeMachineId(tree: Pick<Tree, 'readFile'>): string | undefined {
  const text = tree.readFile('/etc/machine-id');
  if (text === undefined || text === '' || /^uninitialized\n?$/.test(text)) return undefined;
  const m = /^([0-9a-fA-F]{32})\n?$/.exec(text);
  if (!m) throw new ContainerError('Failed to read machine ID from container image: Invalid argument');
  if (/^0+$/.test(m[1]!)) throw new ContainerError('Machine ID in container image is zero, refusing.');
  return id128ToUuid(m[1]!.toLowerCase());
}

/**
 * An image's tree, once the image is open (cfg.image.view): the checks prepareContainer() made on a directory's tree —
 * the OS tree (named by the image), --user, the machine ID. Changes CFG.
 */
export function verifyImageTree(cfg: ContainerConfig, tree: Tree): void {
  const image = cfg.image?.path ?? cfg.directory;
  if (cfg.startMode === 'boot') {
    if (tree.resolve('/etc/os-release') === undefined && tree.resolve('/usr/lib/os-release') === undefined)
      throw new ContainerError(`Image ${image} doesn't look like an OS root directory (os-release file is missing). Refusing.`);
  } else if (!tree.isDirectory('/usr')) throw new ContainerError(`Image ${image} doesn't look like it has an OS tree (/usr/ directory is missing). Refusing.`);
  if (cfg.userName !== undefined) {
    const user = resolveUser(tree, cfg.userName);
    if (user) cfg.user = user;
  }
  const id = treeMachineId(tree);
  if (id !== undefined) cfg.uuid = id;
}

export interface Prepared {
  config: ContainerConfig;
  /** 0 when none was chosen: SIGINT/SIGTERM then kill the container at once, like systemd-nspawn */
  killSignal: number;
  quiet: boolean;
  keepUnit: boolean;
  /** --notify-ready=yes: ready when the container's init says READY=1 (else when it has started) */
  notifyReady: boolean;
}

/** image_search_path[IMAGE_MACHINE] of systemd 252 (src/shared/discover-image.c), in its order */
export const MACHINE_IMAGE_SEARCH_PATH = ['/etc/machines', '/run/machines', '/var/lib/machines', '/var/lib/container', '/usr/local/lib/machines', '/usr/lib/machines'];

/** A machine's image as image_find() finds it: a directory (or block device) NAME, else a regular file NAME.raw. */
export interface MachineImage {
  path: string;
  raw: boolean;
  /** image_make()'s read_only: a raw image without write permission bits, or below /usr */
  readOnly: boolean;
}

/** image_find(IMAGE_MACHINE, NAME): the first NAME or NAME.raw in MACHINE_IMAGE_SEARCH_PATH (symlinks followed). */
export function findMachineImage(name: string, search: readonly string[] = MACHINE_IMAGE_SEARCH_PATH): MachineImage | undefined {
  for (const dir of search) {
    const plain = statSync(pathJoin(dir, name), { throwIfNoEntry: false });
    if (plain) {
      if (plain.isDirectory() || plain.isBlockDevice()) return { path: pathJoin(dir, name), raw: false, readOnly: false };
      continue;
    }
    const raw = statSync(pathJoin(dir, `${name}.raw`), { throwIfNoEntry: false });
    if (raw?.isFile()) return { path: pathJoin(dir, `${name}.raw`), raw: true, readOnly: (raw.mode & 0o222) === 0 || dir.startsWith('/usr/') };
  }
  return undefined;
}

/**
 * determine_names(): the directory (-D; else for -M the machine's image as systemd 252's image_find() finds it, a
 * directory or NAME.raw, and /var/lib/machines/NAME when there is none or with --template; else the working
 * directory) and the machine name (-M, else the directory's or image's name cleaned up as a host name). The name is
 * the one the settings file is looked up by. IMAGE: the disk image -M found (NAME.raw), when it found one.
 */
export function determineNames(
  s: Settings,
  cwd: string = process.cwd(),
  hostname: () => string = osHostname,
  find: (name: string) => MachineImage | undefined = findMachineImage,
): { directory: string; machineName: string; image?: MachineImage } {
  let directory = s.directory;
  let found: MachineImage | undefined;
  if (directory === undefined && s.image === undefined && s.machineName !== undefined) {
    // --template makes /var/lib/machines/NAME instead of looking for it
    found = s.template === undefined ? find(s.machineName) : undefined;
    directory = found && !found.raw ? found.path : `/var/lib/machines/${s.machineName}`;
  }
  // -i: the image's file systems are mounted on an empty directory in the container's namespace only
  if (s.image !== undefined || found?.raw) directory = IMAGE_ROOT_DIRECTORY;
  if (directory === undefined) directory = cwd;
  const image = found?.raw ? { image: found } : {};
  let machineName = s.machineName;
  if (machineName === undefined) {
    // an image's name without its .raw suffix
    const fromImage = s.image !== undefined ? basename(s.image).replace(/(.)\.raw$/, '$1') : undefined;
    machineName = hostnameCleanup(fromImage ?? (directory === '/' ? hostname() : basename(directory)));
    if (!hostnameIsValid(machineName)) throw new ContainerError('Failed to determine machine name automatically, please use -M.');
  }
  return { directory, machineName, ...image };
}

/** What loading the .nspawn file said: warnings and diagnostics for stderr, in systemd's order. */
export interface SettingsLoad {
  settings: Settings;
  messages: string[];
  /** the file that was used, if any */
  path?: string;
}

/**
 * load_settings() and merge_settings(): finds NAME.nspawn (trusted in /etc/systemd/nspawn and
 * /run/systemd/nspawn, untrusted beside the image), and merges it under the command line. Throws when systemd
 * would refuse to start because of the file.
 */
export function applySettingsFile(cl: { settings: Settings; set: ReadonlySet<SettingKey> }, fs?: SettingsFs): SettingsLoad {
  // load_oci_bundle(): a bundle's config.json instead of any .nspawn file (trusted; refusals are OciBundleErrors)
  if (cl.settings.ociBundle !== undefined) {
    const bundle = loadOciBundle(cl.settings.ociBundle, fs);
    const merged = mergeOciBundle(cl, bundle);
    return { settings: merged.settings, messages: merged.warnings, path: bundle.path };
  }
  const mode = cl.settings.settingsMode ?? 'yes';
  if (mode === 'no') return { settings: cl.settings, messages: [] };
  const { directory, machineName, image } = determineNames(cl.settings);
  const loaded = loadSettings({ machineName, imagePath: cl.settings.image ?? image?.path ?? directory, mode, set: cl.set, ...(fs ? { fs } : {}) });
  const messages = loaded.diagnostics.map(formatDiagnostic);
  if (loaded.fatal) throw new ContainerError(messages.at(-1) ?? `Failed to load settings file of ${machineName}.`);
  if (loaded.path === undefined) return { settings: cl.settings, messages };
  const merged = mergeSettings(cl, { settings: loaded.settings, trusted: loaded.trusted, mode, path: loaded.path });
  return { settings: merged.settings, messages: [...messages, ...merged.warnings], path: loaded.path };
}

/**
 * COMMANDLINE is what the command line alone said, when S is the command line merged with a .nspawn file
 * (systemd-nspawn decides some capabilities from the command line's network and user namespace options).
 */
export function prepareContainer(s: Settings, env: PrepareEnv, unsupported: readonly string[] = [], commandLine: Settings = s): Prepared {
  const notYet = [...unsupported, ...unsupportedFeatures(s)];
  if (notYet.length > 0) throw new ContainerError(`${notYet[0]} is not supported yet by this nspawn build.`);
  // parse_argv(): --load-credential='s file or socket is read before anything else is looked at
  const credentials = s.credentials?.length ? loadCredentials(s.credentials, env.credentials) : [];
  // verify_arguments(): without a PID or UTS namespace of its own (--share-system, $SYSTEMD_NSPAWN_SHARE_*, a bundle's
  // linux.namespaces), the machine is not registered, and only a command may run as its PID 1 (-b and -a are refused)
  const sharedNamespaces = sharedNamespacesOf(s);
  const noNamespacing = sharedNamespaces?.includes('pid') === true || sharedNamespaces?.includes('uts') === true;
  if (noNamespacing && (s.startMode ?? 'pid1') !== 'pid1') throw new ContainerError('--boot cannot be used without namespacing.');
  // verify_arguments()
  const capabilities = containerCapabilities(s, commandLine);
  const ambientError = verifyAmbientCapabilities(capabilities, s.startMode ?? 'pid1');
  if (ambientError) throw new ContainerError(ambientError);
  if (s.bindUser?.length && (s.privateUsers === undefined || s.privateUsers.mode === 'no'))
    throw new ContainerError('--bind-user= requires --private-users');

  const names = determineNames(s, process.cwd(), env.hostname);
  const directory = names.directory;
  // determine_names(): a name taken from the directory gets a random suffix with -x on the command line (after the
  // settings file was looked up by the plain name), so that many ephemeral runs of one tree coexist
  const machineName = s.machineName === undefined && commandLine.ephemeral === true ? `${names.machineName}-${randomHex(8)}` : names.machineName;
  // --template and -x together come from a .nspawn file here (the command line refuses them at parse time)
  if (s.template !== undefined && s.ephemeral) throw new ContainerError('--ephemeral and --template= may not be combined.');
  // verify_arguments(): -x links no journal (src/boot.ts); asking for a link without try- is refused, also from a file
  if (s.ephemeral && (s.linkJournal === 'host' || s.linkJournal === 'guest') && !s.linkJournalTry)
    throw new ContainerError('--ephemeral and --link-journal={host,guest} may not be combined.');
  // --template fills a missing directory at setup (src/storage.ts): until then the template stands for the tree
  // an image (-i) is opened by the assembly at setup: its tree is checked there (verifyImageTree())
  // -M NAME found NAME.raw: run it as -i does (and read-only when the image is, unless -x)
  const image = s.image ?? names.image?.path;
  const foundReadOnly = names.image?.readOnly === true && !s.ephemeral;
  const fromTemplate = image === undefined && s.template !== undefined && !env.exists(directory);
  if (fromTemplate && !env.exists(s.template!)) throw new ContainerError(`Failed to resolve path ${s.template}: No such file or directory`);
  if (image !== undefined) {
    if (!env.exists(image)) throw new ContainerError(`Failed to resolve path ${image}: No such file or directory`);
  } else if (!fromTemplate && !env.exists(directory)) throw new ContainerError(`Failed to resolve path ${directory}: No such file or directory`);
  const volatileMode = s.volatile !== undefined && s.volatile !== 'no' ? s.volatile : undefined;
  // spawning on the host's root works when it is copied (-x) or replaced (--volatile=yes|state)
  if (image === undefined && directory === '/' && !s.ephemeral && volatileMode !== 'yes' && volatileMode !== 'state')
    throw new ContainerError(
      'Spawning container on root directory is not supported. Consider using --ephemeral, --volatile=yes or --volatile=state.',
    );
  // --pivot-root=NEW: the root is NEW inside the tree (src/root-dir.ts); its checks name DIRECTORY/NEW for -b
  const outer = fromTemplate ? s.template! : directory;
  let tree = image !== undefined ? undefined : env.tree(outer);
  if (tree && s.pivotRoot) tree = env.tree(tree.resolve(s.pivotRoot.newRoot) ?? pathJoin(outer, s.pivotRoot.newRoot));
  if (tree) verifyOsTree(tree, s.pivotRoot && s.startMode === 'boot' ? pathJoin(directory, s.pivotRoot.newRoot) : directory, s.startMode ?? 'pid1');

  let consoleMode: HelperConsole;
  const tty = env.stdinIsTTY && env.stdoutIsTTY;
  switch (s.consoleMode) {
    case undefined:
      consoleMode = tty ? 'interactive' : 'read-only';
      break;
    case 'autopipe':
      consoleMode = tty ? 'interactive' : 'pipe';
      break;
    default:
      consoleMode = s.consoleMode;
  }
  const quiet = s.quiet === true || consoleMode === 'pipe';

  const user = s.user !== undefined && tree ? resolveUser(tree, s.user) : undefined;
  if (s.workingDirectory !== undefined && !s.workingDirectory.startsWith('/'))
    throw new ContainerError(`Working directory ${s.workingDirectory} is not an absolute path.`);

  for (const m of s.customMounts ?? []) {
    // mount_bind(): the options first (252 reads them only when it mounts), then the source
    const optionsError = bindMountOptionsError(m);
    if (optionsError !== undefined) throw new ContainerError(optionsError);
    if (m.type === 'bind' && !m.sourceInRoot && !env.exists(m.source))
      throw new ContainerError(`Failed to stat ${m.source}: No such file or directory (--bind ${m.source}:${m.destination})`);
    if (m.type === 'overlay')
      for (const l of m.lowers)
        if (!l.startsWith('+') && !env.exists(l)) throw new ContainerError(`Failed to stat ${l}: No such file or directory (--overlay)`);
  }

  const apiEnv = env.environ.SYSTEMD_NSPAWN_API_VFS_WRITABLE;
  let apiVfsWritable: ContainerConfig['apiVfsWritable'] = 'no';
  if (apiEnv === 'network') apiVfsWritable = 'network';
  else if (apiEnv !== undefined && ['1', 'yes', 'y', 'true', 't', 'on'].includes(apiEnv.toLowerCase())) apiVfsWritable = 'yes';

  const startMode = s.startMode ?? 'pid1';
  const config: ContainerConfig = {
    directory,
    machineName,
    hostname: s.hostname ?? machineName,
    uuid: (tree && treeMachineId(tree)) ?? s.uuid ?? (s.machineId ? id128ToUuid(s.machineId) : id128ToUuid(randomId128())),
    startMode,
    parameters: s.parameters ?? [],
    environment: s.environment ?? [],
    // parse_argv(): every volatile mode mounts what the tree holds read-only
    readOnly: s.readOnly === true || volatileMode !== undefined || foundReadOnly,
    customMounts: s.customMounts ?? [],
    console: consoleMode,
    privateNetwork: s.privateNetwork === true,
    rlimits: s.rlimits ?? {},
    resolvConf: s.resolvConf ?? 'auto',
    timezone: s.timezone ?? 'auto',
    useCgns: s.useCgns ?? true,
    apiVfsWritable,
    capabilities,
  };
  if (quiet) config.quiet = true;
  if (s.register === false || noNamespacing) config.register = false;
  if (sharedNamespaces) config.sharedNamespaces = sharedNamespaces;
  const killSignal = s.killSignal ?? (startMode === 'boot' ? SIGRTMIN + 3 : 0);
  config.unit = { keepUnit: s.keepUnit === true, killSignal };
  if (s.slice !== undefined) config.unit.slice = s.slice;
  if (s.properties?.length) config.unit.properties = [...s.properties];
  if (s.ephemeral) config.ephemeral = true;
  if (volatileMode) config.volatile = volatileMode;
  if (s.pivotRoot) config.pivotRoot = { ...s.pivotRoot };
  if (s.template !== undefined) config.template = s.template;
  // the image is opened at setup (@nspawn/assembly), which fills in its mounts and view
  if (image !== undefined) config.image = { path: image, steps: [], view: {} };
  if (s.imagePolicy !== undefined) {
    if (image === undefined) throw new ContainerError('--image-policy= is only supported with --image=.');
    config.imagePolicy = s.imagePolicy;
  }
  if (s.user !== undefined) config.userName = s.user;
  if (user) config.user = user;
  if (s.workingDirectory !== undefined) config.workingDirectory = s.workingDirectory;
  if (s.personality !== undefined) config.personality = s.personality;
  if (s.noNewPrivileges) config.noNewPrivileges = true;
  if (s.oomScoreAdjust !== undefined) config.oomScoreAdjust = s.oomScoreAdjust;
  if (s.cpuAffinity?.length) config.cpuAffinity = s.cpuAffinity;
  if (s.linkJournal !== undefined && s.linkJournal !== 'auto') config.linkJournal = s.linkJournal;
  if (s.linkJournalTry) config.linkJournalTry = true;
  if (s.systemCallFilter && (s.systemCallFilter.allow.length > 0 || s.systemCallFilter.deny.length > 0))
    config.systemCallFilter = { allow: [...s.systemCallFilter.allow], deny: [...s.systemCallFilter.deny] };
  if (s.suppressSync) config.suppressSync = true;
  if (credentials.length > 0) config.credentials = credentials;
  // verify_arguments(): duplicates dropped (strv_uniq())
  if (s.bindUser?.length) config.bindUser = [...new Set(s.bindUser)];
  if (seccompDisabled(env.environ.SYSTEMD_SECCOMP)) config.seccomp = false;
  const oci = ociRunOf(s.oci, consoleMode);
  if (oci) config.oci = oci;
  const deviceCgroup = parseDevicePolicyEnv(env.environ.NSPAWN_DEVICE_POLICY);
  if (deviceCgroup !== undefined) config.deviceCgroup = deviceCgroup;
  const network = networkConfig(s, env.environ);
  if (network) config.network = network;
  // -U, --private-users=, PrivateUsers=: the range and ownership are settled by the private-users extension
  const pu = s.privateUsers;
  if (pu && pu.mode !== 'no') {
    config.userns = { shift: pu.shift ?? 0, range: pu.range ?? 65536 };
    if (pu.mode === 'pick') config.userns.pick = true;
    else if (pu.shift === undefined) config.userns.fromOwner = true;
    const own = s.privateUsersOwnership;
    if (own !== undefined && own !== 'foreign') config.userns.ownership = own;
  }

  return {
    config,
    killSignal,
    quiet,
    keepUnit: s.keepUnit === true,
    notifyReady: s.notifyReady === true,
  };
}

/**
 * arg_clone_ns_flags: the namespaces a bundle's linux.namespaces lacks when the merge took them (ociSharedNamespaces()),
 * else those --share-system and $SYSTEMD_NSPAWN_SHARE_* shared (Settings.sharedNamespaces). Undefined: none.
 */
function sharedNamespacesOf(s: Settings): SharedNamespace[] | undefined {
  if (s.oci?.namespaces) return ociSharedNamespaces(s.oci);
  return s.sharedNamespaces?.length ? [...s.sharedNamespaces] : undefined;
}

/** The network options (src/network.ts); $NSPAWN_NETWORK_AUTO=0 leaves addresses to the container, like systemd-nspawn. */
function networkConfig(s: Settings, environ: NodeJS.ProcessEnv): NetworkConfig | undefined {
  const n: NetworkConfig = {};
  if (s.networkVeth) n.veth = true;
  if (s.networkVethExtra?.length) n.vethExtra = [...s.networkVethExtra];
  if (s.networkBridge !== undefined) n.bridge = s.networkBridge;
  if (s.networkZone !== undefined) n.zone = s.networkZone;
  if (s.networkMacvlan?.length) n.macvlan = [...s.networkMacvlan];
  if (s.networkIpvlan?.length) n.ipvlan = [...s.networkIpvlan];
  if (s.networkInterfaces?.length) n.interfaces = [...s.networkInterfaces];
  if (s.networkNamespacePath !== undefined) n.namespacePath = s.networkNamespacePath;
  if (s.exposePorts?.length) n.ports = s.exposePorts.map((p) => ({ ...p }));
  if (Object.keys(n).length === 0) return undefined;
  const auto = environ.NSPAWN_NETWORK_AUTO?.toLowerCase();
  if (auto !== undefined && ['0', 'no', 'n', 'false', 'f', 'off'].includes(auto)) n.autoConfigure = false;
  if (auto !== undefined && ['1', 'yes', 'y', 'true', 't', 'on'].includes(auto)) n.autoConfigure = true;
  return n;
}
