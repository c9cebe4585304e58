export * from './model.js';
export * from './values.js';
export * from './cli-args.js';
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
export { interfacePair, capabilityFromName, capabilityName, signalFromString } from './systemd-values.js';
export type { InterfaceKind } from './systemd-values.js';
export { HOST_NAME_MAX, NAME_MAX, filenameIsValid, hostnameIsValid, imageNameIsValid, machineNameIsValid } from './names.js';
export type { HostnameFlags } from './names.js';
