/**
 * @nspawn/machined: what systemd-nspawn 252 does with machined and systemd on a systemd host, over D-Bus.
 *
 * @packageDocumentation
 */
export { Variant, BusError, recordingBus, type Bus, type MethodCall, type Signal } from './bus.js';
export { connectSystemBus, systemBusAddress, type ConnectOptions } from './dbus.js';
export { isSystemdBooted, mainCgroupPath, cgroupOwnerUid, keepUnitRegisterError } from './detect.js';
export { MachinedError, busFailure, type MachinedErrorKind } from './errors.js';
export {
  Machined,
  openMachined,
  type Registration,
  type MachineListEntry,
  type MachineProperties,
} from './machined.js';
export {
  createMachineCall,
  registerMachineCall,
  allocateScopeCall,
  machineProperties,
  scopeUnitName,
  uuidBytes,
  statDeviceCheck,
  MACHINED,
  SYSTEMD,
  type MachineSpec,
  type DeviceCheck,
} from './messages.js';
export { parseUnitProperty, parseUnitProperties, PropertyError, type UnitProperty } from './properties.js';
export { unitNameEscape, machineScopeName, mangleUnitName, unitNameIsValid } from './unit-name.js';
