/**
 * The one typed model that both the command line and .nspawn files produce.
 * A field that is `undefined` was not set; merging fills it from the other source.
 * Field names follow systemd's `Settings` struct (src/nspawn/nspawn-settings.h), camel-cased.
 */

export type StartMode = 'pid1' | 'pid2' | 'boot';
/** a namespace systemd-nspawn 252 can leave the container sharing with the host (arg_clone_ns_flags) */
export type SharedNamespace = 'ipc' | 'pid' | 'uts';
export type ConsoleMode = 'interactive' | 'read-only' | 'passive' | 'pipe' | 'autopipe';
export type ResolvConfMode =
  | 'off'
  | 'copy-host'
  | 'copy-static'
  | 'copy-uplink'
  | 'copy-stub'
  | 'replace-host'
  | 'replace-static'
  | 'replace-uplink'
  | 'replace-stub'
  | 'bind-host'
  | 'bind-static'
  | 'bind-uplink'
  | 'bind-stub'
  | 'delete'
  | 'auto';
export type TimezoneMode = 'off' | 'copy' | 'bind' | 'symlink' | 'delete' | 'auto';
export type LinkJournal = 'no' | 'host' | 'guest' | 'auto';
export type VolatileMode = 'no' | 'yes' | 'state' | 'overlay';
export type UserNamespaceMode = 'no' | 'fixed' | 'pick';
/** 'foreign' exists since systemd v258 (map from the foreign UID range). */
export type UserNamespaceOwnership = 'off' | 'chown' | 'map' | 'foreign' | 'auto';

/** A mount the user asked for: --bind/--bind-ro/--tmpfs/--overlay/--overlay-ro/--inaccessible, Bind=, ... */
export type CustomMount =
  | {
      type: 'bind';
      /**
       * Host path. From a .nspawn file: absolute (relative paths are made absolute against the parser's cwd, as
       * systemd does), without the '+' prefix (see sourceInRoot). '' means: no source given ("Bind=:/dst"), i.e.
       * bind a throw-away temporary directory, as systemd does.
       */
      source: string;
      destination: string; // absolute path inside the container
      readOnly: boolean;
      recursive: boolean; // rbind (default) or norbind
      idmap?: boolean; // idmap / noidmap option
      /** ownership option of newer systemd: off | chown | idmap */
      ownership?: 'off' | 'chown' | 'idmap';
      /** true when the source began with '+': relative to the container root */
      sourceInRoot?: boolean;
      /**
       * The option string after the second ':' exactly as written (systemd keeps it verbatim and parses it when
       * mounting). recursive/idmap/idmapping are derived from it.
       */
      options?: string;
      /** the last ID-mapping option given: noidmap | idmap | rootidmap | owneridmap (owneridmap: systemd v256+) */
      idmapping?: BindIdmapping;
    }
  | { type: 'tmpfs'; destination: string; options: string }
  | {
      type: 'overlay';
      /** lower layers, top-most last (as written on the command line, before the upper) */
      lowers: string[];
      upper: string; // '' means: a throw-away upper in a temporary directory
      destination: string;
      readOnly: boolean;
    }
  | {
      type: 'inaccessible';
      destination: string;
      /** a missing destination is skipped, not an error (an OCI bundle's linux.maskedPaths) */
      graceful?: boolean;
    }
  /**
   * A file system of TYPE mounted from SOURCE with OPTIONS as its data (mount(2) with no flags): an OCI bundle's
   * mounts of a type other than "bind" (systemd's CUSTOM_MOUNT_ARBITRARY; no .nspawn key or option makes one)
   */
  | { type: 'arbitrary'; source?: string; destination: string; fstype: string; options?: string };

export type BindIdmapping = 'noidmap' | 'idmap' | 'rootidmap' | 'owneridmap';

/**
 * A credential for the container (--set-credential=, --load-credential=; systemd has no .nspawn key for them): its
 * ID and either its bytes or the file to read them from when the container starts (`socket`: the path may be an
 * AF_UNIX stream socket to read from, as an absolute --load-credential= PATH may be).
 */
export type CredentialSetting = { id: string; data: Uint8Array } | { id: string; path: string; socket: boolean };

export interface ExposePort {
  protocol: 'tcp' | 'udp';
  hostPort: number;
  containerPort: number;
}

export interface Rlimit {
  soft: bigint | 'infinity';
  hard: bigint | 'infinity';
}

export interface UserNamespaceSetting {
  mode: UserNamespaceMode;
  /** base UID for 'fixed' */
  shift?: number;
  /** size of the range, 65536 unless given */
  range?: number;
}

export interface Settings {
  // [Exec]
  startMode?: StartMode;
  ephemeral?: boolean;
  parameters?: string[];
  environment?: string[];
  user?: string;
  capability?: string[]; // capability names, 'all' allowed
  dropCapability?: string[];
  ambientCapability?: string[];
  killSignal?: number;
  personality?: 'x86' | 'x86-64';
  machineId?: string; // 32 hex chars, lower case
  workingDirectory?: string;
  pivotRoot?: { newRoot: string; oldRoot?: string };
  privateUsers?: UserNamespaceSetting;
  notifyReady?: boolean;
  systemCallFilter?: { allow: string[]; deny: string[] };
  rlimits?: Partial<Record<RlimitName, Rlimit>>;
  hostname?: string;
  noNewPrivileges?: boolean;
  oomScoreAdjust?: number;
  cpuAffinity?: number[];
  resolvConf?: ResolvConfMode;
  linkJournal?: LinkJournal;
  linkJournalTry?: boolean;
  timezone?: TimezoneMode;
  suppressSync?: boolean;

  // [Files]
  readOnly?: boolean;
  volatile?: VolatileMode;
  customMounts?: CustomMount[];
  privateUsersOwnership?: UserNamespaceOwnership;
  bindUser?: string[];
  /** --set-credential=/--load-credential= in the order given (command line only) */
  credentials?: CredentialSetting[];
  /**
   * BindUserShell= (systemd v258+): an absolute path = use this shell in the bound user records; true = copy the
   * host user's shell; false = do not copy it (systemd's default).
   */
  bindUserShell?: string | boolean;

  // [Network]
  privateNetwork?: boolean;
  networkNamespacePath?: string;
  /**
   * Interface=, MACVLAN=, IPVLAN=: one entry per interface, "HOST" or "HOST:CONTAINER" (interface names cannot
   * contain ':'). Without a container-side name systemd uses HOST for Interface=, "mv-HOST" for MACVLAN= and
   * "iv-HOST" for IPVLAN= (see interfacePair()).
   */
  networkInterfaces?: string[];
  networkMacvlan?: string[];
  networkIpvlan?: string[];
  networkVeth?: boolean;
  /** VirtualEthernetExtra=: "HOST" (same name in the container) or "HOST:CONTAINER" */
  networkVethExtra?: string[];
  networkBridge?: string;
  /** the zone name as given, without the "vz-" prefix systemd adds for the bridge interface */
  networkZone?: string;
  exposePorts?: ExposePort[];

  // command line only (not in .nspawn files), kept in the same model so one object flows on
  directory?: string;
  template?: string;
  image?: string;
  /** --image-policy= (systemd 254's grammar, checked by @nspawn/image when the image is opened) */
  imagePolicy?: string;
  machineName?: string;
  uuid?: string;
  consoleMode?: ConsoleMode;
  quiet?: boolean;
  register?: boolean;
  keepUnit?: boolean;
  /** --slice= (as given; systemd mangles it into a .slice name) */
  slice?: string;
  /** --property=, in order: the scope's unit properties */
  properties?: string[];
  settingsMode?: SettingsMode;
  useCgns?: boolean;
  /**
   * The host's IPC, PID and UTS namespaces the container shares instead of getting one of its own (systemd's
   * arg_clone_ns_flags without them), in that order: all three with --share-system; each as
   * $SYSTEMD_NSPAWN_SHARE_NS_IPC, _PID, _UTS and then $SYSTEMD_NSPAWN_SHARE_SYSTEM say (parseCommandLine() reads
   * them, and a variable that is set records 'clone-ns-flags'). An OCI bundle's linux.namespaces replaces it unless
   * that key keeps them out (mergeOciBundle()). No .nspawn key sets it.
   */
  sharedNamespaces?: SharedNamespace[];
  /** --oci-bundle=PATH (absolute): the bundle whose config.json is read instead of a .nspawn file */
  ociBundle?: string;
  /** what only an OCI bundle's config.json sets (systemd's Settings fields without a .nspawn key or option) */
  oci?: OciSettings;
}

/** A capability set of an OCI bundle: canonical names ("CAP_CHOWN"); undefined: the set was not given. */
export interface OciCapabilities {
  bounding?: string[];
  effective?: string[];
  inheritable?: string[];
  permitted?: string[];
  ambient?: string[];
}

/** An extra device node of an OCI bundle (linux.devices): mknod(PATH, MODE, makedev(MAJOR, MINOR)), then chown. */
export interface OciDeviceNode {
  path: string;
  /** file type and permission bits (type, then fileMode's permission bits: default 0644) */
  mode: number;
  major?: number;
  minor?: number;
  uid?: number;
  gid?: number;
}

/** linux.seccomp of an OCI bundle, checked against systemd 252's tables (actions, architectures, operators). */
export interface OciSeccomp {
  defaultAction: string;
  architectures: string[];
  syscalls: Array<{ names: string[]; action: string; args: Array<{ index: number; value: bigint; valueTwo: bigint; op: string }> }>;
}

/** One OCI hook (systemd 252 reads them and runs none). */
export interface OciHook {
  path: string;
  args?: string[];
  env?: string[];
  timeout?: number;
}

/** The parts of an OCI bundle's config.json that have no .nspawn counterpart. */
export interface OciSettings {
  /** the bundle directory */
  bundle: string;
  /** process.user */
  uid?: number;
  gid?: number;
  supplementaryGids?: number[];
  /** process.capabilities (the "full capabilities" quintet) */
  capabilities?: OciCapabilities;
  /** process.consoleSize */
  consoleSize?: { width: number; height: number };
  /** linux.namespaces: which of ipc, pid, uts the container gets (systemd's clone_ns_flags) */
  namespaces?: SharedNamespace[];
  /** linux.sysctl, in order */
  sysctl?: Array<[key: string, value: string]>;
  seccomp?: OciSeccomp;
  /** linux.devices (the implicit ones, /dev/null and friends, left out) */
  devices?: OciDeviceNode[];
  hooks?: { prestart: OciHook[]; poststart: OciHook[]; poststop: OciHook[] };
  /**
   * linux.resources as the unit properties systemd would give the machine's scope ("MemoryMax=1048576",
   * "DeviceAllow=char-1:3 rwm", ...): used only where a scope is made (not under --keep-unit --register=no)
   */
  properties?: string[];
}

export type SettingsMode = 'yes' | 'no' | 'trusted' | 'override';

export const RLIMIT_NAMES = [
  'CPU',
  'FSIZE',
  'DATA',
  'STACK',
  'CORE',
  'RSS',
  'NPROC',
  'NOFILE',
  'MEMLOCK',
  'AS',
  'LOCKS',
  'SIGPENDING',
  'MSGQUEUE',
  'NICE',
  'RTPRIO',
  'RTTIME',
] as const;
export type RlimitName = (typeof RLIMIT_NAMES)[number];

/** Linux resource numbers, index = RLIMIT_* value. */
export const RLIMIT_NUMBERS: Record<RlimitName, number> = {
  CPU: 0,
  FSIZE: 1,
  DATA: 2,
  STACK: 3,
  CORE: 4,
  RSS: 5,
  NPROC: 6,
  NOFILE: 7,
  MEMLOCK: 8,
  AS: 9,
  LOCKS: 10,
  SIGPENDING: 11,
  MSGQUEUE: 12,
  NICE: 13,
  RTPRIO: 14,
  RTTIME: 15,
};

/**
 * The groups of settings systemd tracks in its SettingsMask (src/nspawn/nspawn-settings.h): a command-line
 * option that sets something records its group, and a group set on the command line is not taken from a
 * .nspawn file (unless --settings=override). Resource limits have one group each: 'rlimit-NOFILE', ...
 */
export const SETTING_GROUPS = [
  'start-mode',
  'environment',
  'user',
  'capability',
  'kill-signal',
  'personality',
  'machine-id',
  'network',
  'expose-ports',
  'read-only',
  'volatile-mode',
  'custom-mounts',
  'working-directory',
  'userns',
  'notify-ready',
  'pivot-root',
  'syscall-filter',
  'hostname',
  'no-new-privileges',
  'oom-score-adjust',
  'cpu-affinity',
  'resolv-conf',
  'link-journal',
  'timezone',
  'ephemeral',
  'slice',
  'directory',
  'use-cgns',
  'clone-ns-flags',
  'console-mode',
  'credentials',
  'bind-user',
  'bind-user-shell',
  'suppress-sync',
] as const;
export type SettingKey = (typeof SETTING_GROUPS)[number] | `rlimit-${RlimitName}`;

/** Every SettingKey, in systemd's bit order (the per-limit keys last, in RLIMIT_* order). */
export const SETTING_KEYS: readonly SettingKey[] = [
  ...SETTING_GROUPS,
  ...RLIMIT_NAMES.map((n): SettingKey => `rlimit-${n}`),
];

/**
 * The SettingKey a command-line parser records when it sets a field of Settings (fields not listed: none).
 * Resource limits have one key per limit: setting rlimits.NOFILE records 'rlimit-NOFILE'.
 */
export const SETTING_KEY_OF_FIELD: Readonly<Partial<Record<keyof Settings, SettingKey>>> = {
  startMode: 'start-mode',
  parameters: 'start-mode',
  ephemeral: 'ephemeral',
  environment: 'environment',
  user: 'user',
  capability: 'capability',
  dropCapability: 'capability',
  ambientCapability: 'capability',
  killSignal: 'kill-signal',
  personality: 'personality',
  machineId: 'machine-id',
  uuid: 'machine-id',
  workingDirectory: 'working-directory',
  pivotRoot: 'pivot-root',
  privateUsers: 'userns',
  privateUsersOwnership: 'userns',
  notifyReady: 'notify-ready',
  systemCallFilter: 'syscall-filter',
  hostname: 'hostname',
  noNewPrivileges: 'no-new-privileges',
  oomScoreAdjust: 'oom-score-adjust',
  cpuAffinity: 'cpu-affinity',
  resolvConf: 'resolv-conf',
  linkJournal: 'link-journal',
  linkJournalTry: 'link-journal',
  timezone: 'timezone',
  suppressSync: 'suppress-sync',
  readOnly: 'read-only',
  volatile: 'volatile-mode',
  customMounts: 'custom-mounts',
  bindUser: 'bind-user',
  credentials: 'credentials',
  bindUserShell: 'bind-user-shell',
  privateNetwork: 'network',
  networkNamespacePath: 'network',
  networkInterfaces: 'network',
  networkMacvlan: 'network',
  networkIpvlan: 'network',
  networkVeth: 'network',
  networkVethExtra: 'network',
  networkBridge: 'network',
  networkZone: 'network',
  exposePorts: 'expose-ports',
  directory: 'directory',
  template: 'directory',
  image: 'directory',
  imagePolicy: 'directory',
  consoleMode: 'console-mode',
  useCgns: 'use-cgns',
};

/** Where a value came from, for messages: "FILE:LINE" or "--option". */
export interface Diagnostic {
  severity: 'warning' | 'error';
  /** file path, or undefined for the command line */
  file?: string;
  line?: number;
  /** the key or option, e.g. "Bind" or "--bind" */
  key?: string;
  value?: string;
  message: string;
}

/** Formats a diagnostic the way systemd logs config errors: "FILE:LINE: Key=value: why". */
export function formatDiagnostic(d: Diagnostic): string {
  const where = d.file !== undefined ? `${d.file}${d.line !== undefined ? `:${d.line}` : ''}: ` : '';
  const what =
    d.key !== undefined
      ? d.file !== undefined
        ? `${d.key}=${d.value ?? ''}: `
        : `${d.key}${d.value !== undefined ? `=${d.value}` : ''}: `
      : '';
  return `${where}${what}${d.message}`;
}

/** Thrown for invalid command-line input; the message names the option and the value. */
export class SettingsError extends Error {
  override name = 'SettingsError';
  constructor(
    message: string,
    readonly key?: string,
    readonly value?: string,
  ) {
    super(message);
  }
}
