export * from './model.js';
export * from './values.js';
export * from './cli-args.js';
export { CAPABILITIES, capabilityFromName, capabilityName } from './capabilities.js';
export { CONSOLE_MODES, RESOLV_CONF_MODES, TIMEZONE_MODES } from './grammar.js';
export { SIGRTMAX, SIGRTMIN, signalFromString, signalName } from './signals.js';
export { parseRlimitName } from './rlimits.js';
export { credentialNameValid, cunescapeBytes } from './credentials.js';
export { getopt, getoptTable, defaultOrdering, OptionError } from './getopt.js';
export type { ArgKind, GetoptItem, GetoptOption, GetoptOrdering, GetoptTable } from './getopt.js';
export { parseNspawnFile, formatNspawnFile, quoteStrvWord } from './nspawn-file.js';
export type { ParseNspawnOptions, ParseNspawnResult } from './nspawn-file.js';
export {
  loadSettings,
  nodeSettingsFs,
  settingsSearchPath,
  fileInSameDir,
  TRUSTED_SETTINGS_DIRS,
} from './load.js';
export type { SettingsFs, LoadSettingsOptions, LoadSettingsResult } from './load.js';
export {
  mergeSettings,
  mergeEnvironment,
  settingsNetworkConfigured,
  settingsPrivateNetwork,
  settingsNetworkVeth,
} from './merge.js';
export type { MergeCommandLine, MergeFile, MergeResult } from './merge.js';
export { NSPAWN_KEYS, NSPAWN_SECTIONS, lookupKey } from './nspawn-keys.js';
export type { KeySpec, KeyContext, NspawnSection } from './nspawn-keys.js';
export { interfacePair } from './net-values.js';
export { bindMountOptionsError } from './mounts.js';
export type { InterfaceKind } from './net-values.js';
export { HOST_NAME_MAX, NAME_MAX, filenameIsValid, hostnameIsValid, imageNameIsValid, machineNameIsValid } from './names.js';
export type { HostnameFlags } from './names.js';
export { OciBundleError, loadOciBundle, mergeOciBundle, ociExcludedMount, ociSysctlKeyValid, parseOciBundle } from './oci-bundle.js';
export type { OciBundle } from './oci-bundle.js';
export { JsonSyntaxError, parseJsonLocated } from './json-located.js';
export type { JsonNode, JsonType } from './json-located.js';
