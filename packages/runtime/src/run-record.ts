/**
 * The run record the engine notes into (what a run makes on the host, before it makes it): its type, and which record
 * this process holds for a run. The record itself (a lock file under /run/nspawn/runs) and the collection of what gone
 * runs left are @nspawn/assembly's (its recovery extension sets it here with setRunRecord()).
 */

/** What a run made (or is about to make) on the host: the content of its record. */
export interface RunRecord {
  machine: string;
  /** the process holding the record's lock: nspawn, or the helper that replaced it (the same PID) */
  pid: number;
  /** its start time (/proc/PID/stat), so that a reused PID is not taken for it */
  startTime: number;
  /** the tree the run started on (a plain run's image locks are beside it) */
  directory?: string;
  /** --slice= (no systemd): the scope's slice path below each hierarchy's root, when not machine.slice */
  slice?: string;
  /** -x: the snapshot, noted before it is made */
  snapshot?: string;
  /** -U picked a range: its lock file under /run/systemd/nspawn-uid (noted before the pick) */
  userns?: boolean;
  /** networking: a record under /run/nspawn/net (noted before it is written) */
  net?: boolean;
  /** --overlay='s scratch directories made for the run (/var/tmp/nspawn-temp-*, or `.#UPPER<hex>` beside an upper one) */
  scratch?: string[];
  /** the helper, when it outlives nspawn (nspawnd's containers): the run lives as long as it does */
  survivor?: { pid: number; startTime: number };
}

/** One run's record, held by this process. */
export interface HeldRun {
  readonly path: string;
  readonly record: Readonly<RunRecord>;
  /** adds to the record (written at once: before what it names is made) */
  note(patch: Partial<RunRecord>): void;
  /** something could not be removed at the end: release() then keeps the record for a later start to collect */
  markLeft(): void;
  /** clears FD_CLOEXEC: the lock goes with an execve() to the helper (plan.inheritedLocks), which removes the file */
  keepAcrossExec(): number;
  /** removes the record and lets go of the lock (keeps the file when markLeft() was called); idempotent */
  release(): void;
}

/** the records this process holds, by the run's configuration (the extensions of one run share it) */
const heldRuns = new WeakMap<object, HeldRun>();

/** The run record this process holds for the run of CFG (undefined without a recovery extension). */
export function runRecordOf(cfg: object): HeldRun | undefined {
  return heldRuns.get(cfg);
}

/** Notes (or, with undefined, forgets) the record held for the run of CFG. */
export function setRunRecord(cfg: object, held: HeldRun | undefined): void {
  if (held) heldRuns.set(cfg, held);
  else heldRuns.delete(cfg);
}
