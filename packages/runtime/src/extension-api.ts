/**
 * Container extensions: the pieces of a start that live outside the helper's plan (a uid range and its lock, an
 * ephemeral snapshot, network links, registration with nspawnd). The engine (runContainer(), handoffContainer()) calls
 * the extensions it is given in order around each boot and in reverse order when tearing down, on every exit path; it
 * never imports a concrete one (those are @nspawn/assembly's).
 */
import type { ContainerConfig } from './plan.js';
import type { HelperPlan } from './protocol.js';

/** What an extension sees of the run it is part of. */
export interface ContainerRun {
  /** the container's configuration: setup() may still change it (directory, userns), later hooks read it */
  readonly cfg: ContainerConfig;
  /** a line for the user (stderr) */
  log(line: string): void;
  /** the run is handed over (src/handoff.ts): the helper replaces this process with the plan made now */
  readonly handoff?: boolean;
}

/** What attach() may answer. */
export interface AttachResult {
  /**
   * The cgroup the container's PID 1 is in now, as a path below each hierarchy's root (e.g.
   * `/machine.slice/machine-NAME.scope`: systemd's scope on a systemd host, delegated). The engine then does what
   * systemd-nspawn 252's create_subcgroup() does: payload/ below it with PID 1 moved there (and, with `supervisor`,
   * supervisor/ with the rest of the cgroup: nspawn and the helper), in the unified and name=systemd hierarchies,
   * owned by the container's root under a user namespace; PID 1 then makes its cgroup namespace rooted at payload/.
   */
  cgroup?: string;
  /** --keep-unit: the cgroup is the caller's own unit; what else is in it moves to supervisor/ */
  supervisor?: boolean;
}

export interface ContainerExtension {
  readonly name: string;
  /**
   * Whether this extension gives the container its cgroup (systemd's scope, on a systemd host): the engine then makes
   * none of its own (no machine.slice/machine-NAME.scope in cgroupfs, no device program of its own: the scope's
   * device policy is systemd's), clones PID 1 where nspawn is, holds it at the sync point, and takes from attach()'s
   * AttachResult where it is. Such a run is never handed over.
   */
  providesCgroup?(cfg: ContainerConfig): boolean;
  /**
   * Whether this run needs the extension (default: yes). A run that no extension needs can be handed over to the
   * helper (src/handoff.ts): nothing of nspawn's stays to call detach() or teardown().
   */
  needed?(cfg: ContainerConfig): boolean;
  /**
   * setup() also runs before a hand-over (src/handoff.ts), whose run then needs nothing more of it (e.g. the private
   * users' range: its lock goes to the helper with the exec; -x's snapshot, overlay or copy, which the helper removes
   * at the end); the exec waits for a promise it returns. Others are skipped there.
   */
  readonly setupBeforeHandoff?: boolean;
  /** once per run, before the first boot; throw a ContainerError to refuse the start (teardown() still runs) */
  setup?(run: ContainerRun): void | Promise<void>;
  /** each boot, once the plan is made: adds to it; set plan.sync when attach() must finish before the payload */
  plan?(run: ContainerRun, plan: HelperPlan): void;
  /**
   * each boot: the container's PID 1 (host PID) exists and, when plan.sync, waits until every attach() is done
   * (uid maps, network links); a throw aborts the start. When an extension provides the cgroup (a systemd host:
   * plan.cgnsLate) PID 1 waits in the container's root already, its mounts made but the cgroup file systems, so that
   * what registers it (machined) never sees the host's root as the machine's
   */
  attach?(run: ContainerRun, pid: number): void | AttachResult | Promise<void | AttachResult>;
  /** each boot, after it ended or failed to start (also when attach() threw or never ran) */
  detach?(run: ContainerRun): void | Promise<void>;
  /** once per run, after the last boot, on every path (also when setup() threw) */
  teardown?(run: ContainerRun): void | Promise<void>;
}
