/**
 * A machine as systemd-machined describes it (org.freedesktop.machine1.Machine's properties, as @nspawn/machined's
 * getMachineProperties() reads them) turned into io.systemd.Machine's MachineInfo: what nspawnd lists for machined's
 * machines on a systemd host, and what nspawnctl shows when it asks machined itself.
 */
import { machineAddresses, machineOsRelease, machineUidShift } from './inspect.js';
import type { MachineInfo } from './machines.js';

/** The properties used (structurally the `MachineProperties` of @nspawn/machined). */
export interface MachinedProperties {
  Name: string;
  /** 32 hex digits, "" (or zeros) when none */
  Id: string;
  /** µs since the epoch */
  Timestamp: bigint;
  TimestampMonotonic: bigint;
  Service: string;
  Unit: string;
  Leader: number;
  Class: string;
  RootDirectory: string;
  NetworkInterfaces: number[];
  State: string;
}

/** P as MachineInfo; with METADATA its OS release, addresses and UID shift read from the leader's /proc. */
export function machineInfoFromMachined(p: MachinedProperties, metadata: boolean): MachineInfo {
  const info: MachineInfo = { name: p.Name, class: p.Class || 'container' };
  if (p.Id && !/^0+$/.test(p.Id)) info.id = p.Id;
  if (p.Service) info.service = p.Service;
  if (p.Leader > 0) info.leader = { pid: p.Leader };
  if (p.RootDirectory) info.rootDirectory = p.RootDirectory;
  if (p.Unit) info.unit = p.Unit;
  if (p.Timestamp > 0n) info.timestamp = { realtime: Number(p.Timestamp), monotonic: Number(p.TimestampMonotonic) };
  if (p.NetworkInterfaces.length > 0) info.ifIndices = p.NetworkInterfaces;
  if (p.State === 'opening' || p.State === 'running' || p.State === 'closing') info.state = p.State;
  if (metadata && p.Leader > 0) {
    // what machined's GetOSRelease/GetAddresses answer, read as nspawnd reads its own machines'
    const os = machineOsRelease(p.Leader);
    if (os) info.OSRelease = os;
    info.addresses = machineAddresses(p.Leader);
    const shift = machineUidShift(p.Leader);
    if (shift !== undefined) info.UIDShift = shift;
  }
  return info;
}
