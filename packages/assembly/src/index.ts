export * from './start.js';
export { applyScopeSettings, cgroupAttributesFromProperties, sliceFromOption } from './scope-settings.js';
export * from './extensions.js';
export * from './recovery.js';
export * from './storage.js';
export * from './private-users.js';
export * from './register.js';
export { systemdExtension, type SystemdExtensionOptions } from './systemd.js';
export { registeredWithMachined, sdBooted } from './systemd-host.js';
export { lazySystemdExtension } from './systemd-lazy.js';
export { networkExtension, hostInterfaceOf, helperLocker, helperMover, collectNetworkLeftovers, hostNetworkdRuns, type NetworkExtensionOptions } from './network.js';
// what the apps need of the engine, so that they need nothing else of it for a start or an entry
export {
  applySettingsFile,
  ContainerError,
  type ContainerExtension,
  type ContainerRun,
  execIn,
  helperPath,
  leaderCgroupProcs,
  spawnIn,
  bindIn,
  type ExecInOptions,
  type BindInOptions,
  peerCredentials,
  peerCredentialsReader,
  type PeerCredentials,
  type PeerCredentialsReader,
  type Prepared,
  type RunHooks,
} from '@nspawn/runtime';
