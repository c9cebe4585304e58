/**
 * io.systemd.Machine.Register's checks, as machined makes them (src/machine/machine-varlink.c, machined-dbus.c),
 * and the ones it leaves to polkit and the service manager, which nspawnd has to make itself:
 *
 * - the name is a machine name (hostname_is_valid), the class one machined knows, the id 128 bits, the root
 *   directory an absolute, normalized path, the interface indices positive;
 * - the leader exists and is pinned (a pidfd), is not PID 1, not nspawnd, and not the caller: a caller that wants to
 *   register itself leaves the leader out (machined then takes the caller, and so do we);
 * - the leader runs in a PID namespace of its own, unless the caller registers itself: a process of the host's PID
 *   namespace would make Kill reach the whole host;
 * - the supervisor is the caller or a parent of the leader (machined takes any; Kill whom=supervisor must not reach
 *   an unrelated process), never PID 1, and pinned too;
 * - no other machine has that name or that leader.
 */
import { type MachineInfo, machineScope, VarlinkError } from '@nspawn/runtime';
import { machineNameIsValid } from '@nspawn/settings';
import type { Machine, Registry } from './registry.js';
import { cgroupOf, cgroupWithin, parentOf, PinnedProcess, pidNamespaceOf } from './pinned.js';

export interface Peer {
  pid: number;
  uid: number;
  gid: number;
}

const invalid = (parameter: string, message?: string) => new VarlinkError('org.varlink.service.InvalidParameter', message ? { parameter, message } : { parameter });
export const MACHINE_CLASSES = ['container', 'vm'];

/** sd_id128_from_string(): 32 hex digits or the 8-4-4-4-12 UUID form; 32 lower-case hex digits back. */
function id128(s: string): string | undefined {
  if (/^[0-9a-fA-F]{32}$/.test(s)) return s.toLowerCase();
  if (/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(s)) return s.replace(/-/g, '').toLowerCase();
  return undefined;
}

/** json_dispatch_path(): absolute and normalized (no "." or ".." component, no "//"). */
function pathIsAbsoluteNormalized(p: string): boolean {
  if (!p.startsWith('/') || p.includes('\0')) return false;
  if (p === '/') return true;
  const parts = p.slice(1).replace(/\/$/, '').split('/');
  return parts.every((x) => x !== '' && x !== '.' && x !== '..');
}

/** A PID given as a number or a ProcessId ({pid, pidfdId?, bootId?}); PARAMETER names it in the error. */
function pidParam(v: unknown, parameter: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  const pid = typeof v === 'object' && !Array.isArray(v) ? (v as { pid?: unknown }).pid : v;
  if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid <= 0) throw invalid(parameter);
  if (pid === 1) throw invalid(parameter, `PID 1 cannot be a machine's ${parameter.startsWith('leader') ? 'leader' : 'supervisor'}`);
  return pid;
}

/** LEADER and LEADERPROCESSID (or SUPERVISOR...) together: either, or both naming the same process. */
function onePid(p: Record<string, unknown>, plain: string, structured: string): { pid: number; parameter: string } | undefined {
  const a = pidParam(p[plain], plain);
  const b = pidParam(p[structured], structured);
  if (a !== undefined && b !== undefined && a !== b) throw invalid(structured, `'${plain}' and '${structured}' name different processes`);
  if (b !== undefined) return { pid: b, parameter: structured };
  if (a !== undefined) return { pid: a, parameter: plain };
  return undefined;
}

/** Is ANCESTOR a parent (or grandparent...) of PID? */
function isAncestor(ancestor: number, pid: number): boolean {
  let p: number | undefined = pid;
  for (let i = 0; i < 64 && p !== undefined && p > 1; i++) {
    p = parentOf(p);
    if (p === ancestor) return true;
  }
  return false;
}

/**
 * Checks a Register call from PEER and returns the machine to add (its processes pinned), or throws the varlink
 * error machined would give: InvalidParameter naming the field, MachineExists.
 */
export function admit(p: Record<string, unknown>, peer: Peer | undefined, registry: Registry): Machine {
  const name = p.name;
  if (typeof name !== 'string' || !machineNameIsValid(name)) throw invalid('name');
  const cls = p.class ?? 'container';
  if (typeof cls !== 'string' || !MACHINE_CLASSES.includes(cls)) throw invalid('class');
  let id: string | undefined;
  if (p.id !== undefined && p.id !== null) {
    id = typeof p.id === 'string' ? id128(p.id) : undefined;
    if (id === undefined) throw invalid('id');
  }
  if (p.rootDirectory !== undefined && p.rootDirectory !== null && (typeof p.rootDirectory !== 'string' || !pathIsAbsoluteNormalized(p.rootDirectory))) throw invalid('rootDirectory');
  if (p.ifIndices !== undefined && p.ifIndices !== null && (!Array.isArray(p.ifIndices) || !p.ifIndices.every((x) => Number.isSafeInteger(x) && x > 0 && x <= 0x7fffffff)))
    throw invalid('ifIndices');
  const given = onePid(p, 'leader', 'leaderProcessId');
  const givenSupervisor = onePid(p, 'supervisor', 'supervisorProcessId');

  // the leader: given, or the caller itself (deliberately: the leader left out)
  const self = given === undefined;
  const leaderParam = given?.parameter ?? 'leader';
  const leaderPid = given?.pid ?? peer?.pid;
  if (leaderPid === undefined) throw invalid('leader', 'No leader given, and the caller is not known');
  if (leaderPid === 1) throw invalid(leaderParam, 'PID 1 cannot be a machine\'s leader');
  if (!self && leaderPid === peer?.pid) throw invalid(leaderParam, `PID ${leaderPid} is the caller itself: leave '${leaderParam}' out to register the calling process`);
  if (leaderPid === process.pid) throw invalid(leaderParam, 'nspawnd cannot be a machine\'s leader');
  const leader = PinnedProcess.pin(leaderPid);
  if (!leader) throw invalid(leaderParam, `PID ${leaderPid} does not exist`);
  let supervisor: PinnedProcess | undefined;
  try {
    const pidns = pidNamespaceOf(leaderPid);
    if (!leader.alive() || pidns === undefined) throw invalid(leaderParam, `PID ${leaderPid} does not exist`);
    const ownNamespace = pidns !== registry.hostPidns;
    if (!ownNamespace && !self)
      throw invalid(leaderParam, `PID ${leaderPid} runs in the host's PID namespace: a machine's leader needs a PID namespace of its own (a process registers itself by leaving '${leaderParam}' out)`);
    let cgroup;
    if (!ownNamespace) {
      // the caller registered itself: Kill may reach its cgroup only when that is its own, not the root or ours
      const cg = cgroupOf(leaderPid);
      const mine = cgroupOf('self');
      if (cg && cg.path !== '/' && !(mine && cgroupWithin(mine, cg))) cgroup = cg;
    }

    // the supervisor: given (the caller, or a parent of the leader), else the caller when it is not the leader
    const supPid = givenSupervisor?.pid ?? (peer && peer.pid !== leaderPid ? peer.pid : undefined);
    if (supPid !== undefined) {
      const param = givenSupervisor?.parameter ?? 'supervisor';
      if (givenSupervisor && supPid !== peer?.pid && !isAncestor(supPid, leaderPid))
        throw invalid(param, `PID ${supPid} is neither the caller nor a parent of the leader`);
      supervisor = PinnedProcess.pin(supPid);
      if (!supervisor) throw invalid(param, `PID ${supPid} does not exist`);
    }

    const existing = registry.running(name);
    if (existing) throw new VarlinkError('io.systemd.Machine.MachineExists', { message: `Machine '${name}' already exists` });
    const other = registry.byProcess(leaderPid);
    if (other && other.leader.pid === leaderPid)
      throw new VarlinkError('io.systemd.Machine.MachineExists', { message: `PID ${leaderPid} is the leader of machine '${other.record.info.name}' already` });

    const info: MachineInfo = {
      name,
      class: cls,
      leader: { pid: leaderPid },
      unit: machineScope(name).unit,
      timestamp: { realtime: Date.now() * 1000, monotonic: Math.round(performance.timeOrigin * 1000 + performance.now() * 1000) },
    };
    if (id !== undefined) info.id = id;
    if (typeof p.service === 'string') info.service = p.service;
    if (typeof p.rootDirectory === 'string') info.rootDirectory = p.rootDirectory;
    if (Array.isArray(p.ifIndices)) info.ifIndices = p.ifIndices as number[];
    if (supervisor) info.supervisor = { pid: supervisor.pid };
    if (typeof p.UIDShift === 'number') info.UIDShift = p.UIDShift;
    if (peer) info.UID = peer.uid;
    return {
      record: {
        info,
        leaderStart: leader.startTime,
        ...(supervisor ? { supervisorStart: supervisor.startTime } : {}),
        ...(ownNamespace ? { pidns } : {}),
        ...(cgroup ? { cgroup } : {}),
      },
      leader,
      ...(supervisor ? { supervisor } : {}),
    };
  } catch (e) {
    leader.release();
    supervisor?.release();
    throw e;
  }
}
