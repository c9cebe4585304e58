/**
 * The registry of running machines (machined's Machine objects): each with its leader (and supervisor) pinned, kept
 * as one JSON file per machine in $NSPAWND_RUNTIME_DIR/machines (written atomically: tmp + rename) so that a new
 * nspawnd finds them again, and forgotten when the leader is gone. Kill reaches only a machine's own processes.
 */
import { readdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { machineAddresses, type MachineInfo, machineOsRelease, machineUidShift, VarlinkError } from '@nspawn/runtime';
import { machineNameIsValid } from '@nspawn/settings';
import { allPids, type CgroupPath, cgroupOf, cgroupWithin, PinnedProcess, pidNamespaceOf } from './pinned.js';

/** What survives nspawnd's restart of a machine: NAME.json in the state directory. */
export interface MachineRecord {
  info: MachineInfo;
  /** the leader's start time (/proc/PID/stat): a recycled PID is not our machine */
  leaderStart: number;
  supervisorStart?: number;
  /** the leader's PID namespace ("pid:[N]") when it was registered: Kill reaches the processes in it */
  pidns?: string;
  /**
   * for a machine in nspawnd's own PID namespace (a caller that registered itself): its cgroup, when that is one of
   * its own (not the root, not one nspawnd runs in); Kill reaches the processes in it, else the leader alone
   */
  cgroup?: CgroupPath;
}

/** A registered machine: its record and its pinned processes. */
export interface Machine {
  record: MachineRecord;
  leader: PinnedProcess;
  /** the supervisor when it is not nspawnd itself */
  supervisor?: PinnedProcess;
}

export type KillWhom = 'all' | 'leader' | 'supervisor';

export const noSuchMachine = (name: unknown) => new VarlinkError('io.systemd.Machine.NoSuchMachine', { message: `No machine '${String(name)}' known` });
const invalid = (parameter: string, message?: string) => new VarlinkError('org.varlink.service.InvalidParameter', message ? { parameter, message } : { parameter });

export class Registry {
  private readonly machines = new Map<string, Machine>();
  /** nspawnd's own PID namespace: the host's, as far as nspawnd can tell */
  readonly hostPidns = pidNamespaceOf('self');

  constructor(
    private readonly dir: string,
    private readonly log: (line: string) => void,
  ) {}

  get size(): number {
    return this.machines.size;
  }

  /** The machine of that name, alive or not (yet) reaped. */
  get(name: string): Machine | undefined {
    return this.machines.get(name);
  }

  has(name: string): boolean {
    return this.machines.has(name);
  }

  alive(m: Machine): boolean {
    return m.leader.alive();
  }

  /** The running machine of that name. */
  running(name: string): Machine | undefined {
    const m = this.machines.get(name);
    return m && this.alive(m) ? m : undefined;
  }

  /** The running machine whose leader is PID, or whose PID namespace PID is in. */
  byProcess(pid: number): Machine | undefined {
    for (const m of this.machines.values()) if (m.leader.pid === pid && this.alive(m)) return m;
    const ns = pidNamespaceOf(pid);
    if (ns === undefined || ns === this.hostPidns) return undefined;
    for (const m of this.machines.values()) if (m.record.pidns === ns && this.alive(m)) return m;
    return undefined;
  }

  /** Every running machine, by name. */
  list(): Machine[] {
    return [...this.machines.values()].filter((m) => this.alive(m)).sort((a, b) => (a.record.info.name < b.record.info.name ? -1 : 1));
  }

  private statePath(name: string): string {
    return join(this.dir, `${name}.json`);
  }

  private save(r: MachineRecord): void {
    const p = this.statePath(r.info.name);
    writeFileSync(`${p}.tmp`, JSON.stringify(r), { mode: 0o600 });
    renameSync(`${p}.tmp`, p);
  }

  /** Adds (or replaces) a machine and writes its record. */
  add(m: Machine): void {
    const old = this.machines.get(m.record.info.name);
    if (old && old !== m) release(old);
    this.machines.set(m.record.info.name, m);
    this.save(m.record);
  }

  /**
   * Registers a machine whose leader is PID, a process nspawnd made itself (the container's PID 1): pinned and
   * its PID namespace noted as for any other; false when it is gone already.
   */
  addOwn(info: MachineInfo, pid: number): boolean {
    const leader = PinnedProcess.pin(pid);
    if (!leader) return false;
    const pidns = pidNamespaceOf(pid);
    if (!leader.alive()) return false;
    this.add({ record: { info, leaderStart: leader.startTime, ...(pidns !== undefined && pidns !== this.hostPidns ? { pidns } : {}) }, leader });
    return true;
  }

  /** Forgets machine NAME (only if its leader is LEADER, when given). */
  drop(name: string, leader?: number): void {
    const m = this.machines.get(name);
    if (!m || (leader !== undefined && m.leader.pid !== leader)) return;
    this.machines.delete(name);
    release(m);
    try {
      unlinkSync(this.statePath(name));
    } catch {
      // gone
    }
  }

  /**
   * After a restart: each saved machine whose leader is still the same process (start time, PID namespace) is ours
   * again, pinned anew; the others are forgotten and STALE is told (to remove what they left).
   */
  recover(stale: (name: string, record: MachineRecord) => void): void {
    for (const f of readdirSync(this.dir)) {
      if (f.endsWith('.tmp')) {
        unlinkSync(join(this.dir, f));
        continue;
      }
      if (!f.endsWith('.json')) continue;
      let r: MachineRecord;
      try {
        r = JSON.parse(readFileSync(join(this.dir, f), 'utf8')) as MachineRecord;
      } catch {
        continue;
      }
      const name = r.info?.name;
      const pid = r.info?.leader?.pid;
      const leader = typeof name === 'string' && machineNameIsValid(name) && `${name}.json` === f && typeof pid === 'number' ? PinnedProcess.pin(pid, r.leaderStart) : undefined;
      const ns = leader ? pidNamespaceOf(leader.pid) : undefined;
      if (leader && (r.pidns === undefined || r.pidns === ns) && leader.alive()) {
        // a record of an older nspawnd: its namespace is the one its (same) leader has now
        if (r.pidns === undefined && ns !== undefined && ns !== this.hostPidns) r.pidns = ns;
        const sup = r.info.supervisor?.pid;
        const supervisor = sup !== undefined && sup !== process.pid && r.supervisorStart !== undefined ? PinnedProcess.pin(sup, r.supervisorStart) : undefined;
        this.machines.set(name!, { record: r, leader, ...(supervisor ? { supervisor } : {}) });
        this.log(`found machine ${name} (leader ${pid}) again`);
      } else {
        leader?.release();
        unlinkSync(join(this.dir, f));
        if (typeof name === 'string' && machineNameIsValid(name)) stale(name, r);
      }
    }
  }

  /** Forgets the machines whose leader is gone (but those KEEP names), telling GONE. */
  reap(keep: (name: string) => boolean, gone: (name: string, record: MachineRecord) => void): void {
    for (const [name, m] of this.machines) {
      if (keep(name) || this.alive(m)) continue;
      this.log(`machine ${name} is gone`);
      this.drop(name);
      gone(name, m.record);
    }
  }

  /**
   * The machine a call names: by `name`, or by `pid` (a PID or a ProcessId: the machine it leads or runs in).
   * InvalidParameter for a name that is no machine name, NoSuchMachine when none runs.
   */
  lookup(p: Record<string, unknown>): Machine {
    if (typeof p.name === 'string') {
      if (!machineNameIsValid(p.name, { dotHost: true })) throw invalid('name');
      const m = this.running(p.name);
      if (!m) throw noSuchMachine(p.name);
      return m;
    }
    if (p.pid !== undefined && p.pid !== null) {
      const pid = typeof p.pid === 'number' ? p.pid : (p.pid as { pid?: unknown }).pid;
      if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid <= 0) throw invalid('pid');
      const m = this.byProcess(pid);
      if (!m) throw noSuchMachine(`PID ${pid}`);
      return m;
    }
    throw invalid('name');
  }

  /** The List entry of M; with METADATA its OS, addresses and UID shift read live from its leader's /proc. */
  describe(m: Machine, metadata: boolean, state: 'running' | 'closing'): MachineInfo {
    const info: MachineInfo = { ...m.record.info, state };
    const pid = m.leader.pid;
    if (metadata) {
      const os = machineOsRelease(pid);
      if (os) info.OSRelease = os;
      info.addresses = machineAddresses(pid);
      const shift = machineUidShift(pid);
      if (shift !== undefined) info.UIDShift = shift;
    }
    return info;
  }

  /**
   * Sends SIGNAL to WHOM of machine M. 'all' is every process of the machine's own PID namespace, or, for a machine
   * in nspawnd's PID namespace, of its own cgroup, else its leader alone: never a process of the host outside it.
   * Each process is pinned before it is checked and signalled through its pidfd. Returns how many got it; throws
   * NotAvailable when the supervisor is unknown or gone.
   */
  kill(m: Machine, whom: KillWhom, signal: number): number {
    if (whom === 'supervisor') {
      const s = m.record.info.supervisor?.pid;
      if (s === process.pid) {
        process.kill(s, signal);
        return 1;
      }
      if (!m.supervisor?.signal(signal)) throw new VarlinkError('io.systemd.Machine.NotAvailable', { message: `The supervisor of machine '${m.record.info.name}' is not running` });
      return 1;
    }
    if (!this.alive(m)) throw noSuchMachine(m.record.info.name);
    if (whom === 'leader') return m.leader.signal(signal) ? 1 : 0;
    const belongs = this.membership(m);
    let n = 0;
    for (const pid of allPids()) {
      if (pid === m.leader.pid || !belongs(pid)) continue;
      const p = PinnedProcess.pin(pid);
      if (!p) continue;
      // checked again now that it is pinned: what is read of /proc/PID is the pinned process's
      if (belongs(pid) && p.signal(signal)) n++;
      p.release();
    }
    return n + (m.leader.signal(signal) ? 1 : 0);
  }

  /** Which PIDs belong to machine M (besides its leader). */
  private membership(m: Machine): (pid: number) => boolean {
    const ns = m.record.pidns;
    if (ns !== undefined && ns !== this.hostPidns) return (pid) => pidNamespaceOf(pid) === ns;
    const cg = m.record.cgroup;
    if (cg) return (pid) => pid !== process.pid && ((c) => c !== undefined && cgroupWithin(c, cg))(cgroupOf(pid));
    return () => false;
  }
}

function release(m: Machine): void {
  m.leader.release();
  m.supervisor?.release();
}
