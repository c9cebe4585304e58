/**
 * --oci-bundle=: what systemd-nspawn 252 does with the parts of a bundle's config.json that have no .nspawn
 * counterpart (Settings.oci, read by @nspawn/settings): the process's numeric user and groups (change_uid_gid_raw()),
 * the capability quintet (drop_capabilities()), the extra device nodes (make_extra_nodes()). What the engine does not
 * do yet is refused before anything is made. The namespaces it lacks are shared with the host
 * (ociSharedNamespaces(), ContainerConfig.sharedNamespaces).
 */
import type { OciDeviceNode, OciSeccomp, OciSettings, SharedNamespace } from '@nspawn/settings';
import { capabilityMaskOf, type CapabilityQuintet, capabilitiesUpTo, type ContainerCapabilities } from './caps.js';
import { ContainerError } from './errors.js';
import { nspawnOciSeccompBytes, OciSeccompError } from './seccomp/oci-nspawn.js';
import type { DeviceRule } from './devices/policy.js';
import type { HelperConsole, HelperPlan, Op } from './protocol.js';

/** The OCI parts a run uses (ContainerConfig.oci). */
export interface OciRun {
  /** process.user.uid/gid/additionalGids: set as they are, no passwd lookup (undefined: root) */
  uid?: number;
  gid?: number;
  groups?: number[];
  /** process.capabilities as masks; undefined: that set was not given */
  capabilities?: Partial<CapabilityQuintet>;
  /** linux.devices */
  devices?: OciDeviceNode[];
  /** linux.seccomp: the filter that replaces nspawn's own (src/seccomp/oci-nspawn.ts) */
  seccomp?: OciSeccomp;
  /** process.consoleSize, for a console nspawn forwards (interactive, read-only) */
  consoleSize?: { width: number; height: number };
}

const notYet = (what: string) => new ContainerError(`${what} is not supported yet by this nspawn build.`);

/**
 * The host's namespaces a container of the bundle shares (ContainerConfig.sharedNamespaces): those of IPC, PID and
 * UTS its linux.namespaces lacks (oci_namespaces() keeps the others in clone_ns_flags). Undefined without a bundle,
 * or when --settings= or the command line kept the bundle's namespaces out of the merge.
 */
export function ociSharedNamespaces(oci: OciSettings | undefined): SharedNamespace[] | undefined {
  if (!oci?.namespaces) return undefined;
  const shared = (['ipc', 'pid', 'uts'] as const).filter((n) => !oci.namespaces!.includes(n));
  return shared.length ? shared : undefined;
}

/** The run's OCI parts from the merged settings' `oci`, or undefined. */
export function ociRunOf(oci: OciSettings | undefined, console: HelperConsole): OciRun | undefined {
  if (!oci) return undefined;
  const run: OciRun = {};
  if (oci.seccomp) run.seccomp = structuredClone(oci.seccomp);
  if (oci.uid !== undefined) run.uid = oci.uid;
  if (oci.gid !== undefined) run.gid = oci.gid;
  if (oci.supplementaryGids?.length) run.groups = [...oci.supplementaryGids];
  if (oci.capabilities) {
    const q: Partial<CapabilityQuintet> = {};
    for (const k of ['bounding', 'effective', 'inheritable', 'permitted', 'ambient'] as const) {
      const list = oci.capabilities[k];
      if (list) q[k] = capabilityMaskOf(list);
    }
    run.capabilities = q;
  }
  if (oci.devices?.length) run.devices = oci.devices.map((d) => ({ ...d }));
  // pty_forward_set_width_height(): only where nspawn forwards a pty
  if (oci.consoleSize && (console === 'interactive' || console === 'read-only')) run.consoleSize = { ...oci.consoleSize };
  return run;
}

/** makedev() as the kernel's new_encode_dev() */
const makedev = (major: number, minor: number) => (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12);
const UID_INVALID = 0xffffffff;

/** make_extra_nodes(): mknod with the mode as given (umask 0), then chmod and chown (an unset ID is left). */
export function ociDeviceOps(devices: readonly OciDeviceNode[]): Op[] {
  const ops: Op[] = [];
  for (const d of devices) {
    const type = d.mode & 0o170000;
    const dev = type === 0o020000 || type === 0o060000 ? makedev(d.major ?? 0, d.minor ?? 0) : 0;
    ops.push({ kind: 'mknod', target: d.path, mode: d.mode, dev });
    if (d.uid !== undefined || d.gid !== undefined) ops.push({ kind: 'chown', target: d.path, mode: d.uid ?? UID_INVALID, dev: d.gid ?? UID_INVALID });
  }
  return ops;
}

/**
 * drop_capabilities() with a quintet from the bundle: the sets it did not give are filled in from arg_caps_retain
 * and arg_caps_ambient as for UID; then capability_quintet_mangle() against BOUNDING (the container's starting
 * bounding set), which with OCI is an error, not a warning. Also refuses what capset() would refuse (an effective
 * set beyond the permitted one, ambient capabilities not both permitted and inheritable), as systemd fails there.
 */
export function ociCapabilityQuintet(
  full: Partial<CapabilityQuintet>,
  c: ContainerCapabilities,
  uid: number,
  bounding: bigint,
  lastCap: number,
): CapabilityQuintet {
  const root = uid === 0;
  const b = full.bounding ?? (root ? c.retain : 0n);
  const q: CapabilityQuintet = {
    bounding: b,
    effective: full.effective ?? (root ? b : 0n),
    inheritable: full.inheritable ?? (root ? b : c.ambient),
    permitted: full.permitted ?? (root ? b : c.ambient),
    ambient: full.ambient ?? c.ambient,
  };
  const known = capabilitiesUpTo(lastCap);
  const combined = q.bounding | q.effective | q.inheritable | q.permitted | q.ambient;
  if ((combined & known & ~bounding) !== 0n) throw new ContainerError('Cannot set capabilities that are not in the current bounding set.');
  for (const k of Object.keys(q) as (keyof CapabilityQuintet)[]) q[k] &= known;
  if ((q.effective & ~q.permitted) !== 0n || (q.ambient & ~(q.permitted & q.inheritable)) !== 0n)
    throw new ContainerError('Dropping capabilities failed: Operation not permitted');
  return q;
}

/** The plan's user for an OCI run: change_uid_gid_raw() (an unset UID or GID is 0, the groups replaced). */
export function applyOciUser(plan: HelperPlan, run: OciRun): void {
  plan.uid = run.uid ?? 0;
  plan.gid = run.gid ?? 0;
  plan.groups = run.groups ?? [];
}

/**
 * The device policy's rules for the bundle's device nodes: mknod only ("m"). systemd-nspawn makes them in its outer
 * child, before the container is in the machine's scope and under its device policy, so making them is never refused
 * there; using them takes what the policy (linux.resources.devices) allows.
 */
export function ociDeviceRules(run: OciRun | undefined): DeviceRule[] {
  const out: DeviceRule[] = [];
  for (const d of run?.devices ?? []) {
    const type = d.mode & 0o170000;
    if (type !== 0o020000 && type !== 0o060000) continue;
    out.push({ type: type === 0o020000 ? 'c' : 'b', major: d.major ?? 0, minor: d.minor ?? 0, access: 'm' });
  }
  return out;
}

/**
 * systemd-nspawn 252 with a bundle's linux.seccomp: its filter instead of nspawn's, and no_new_privs (libseccomp's
 * seccomp_load() sets it). 252 stacks --suppress-sync's filter on top of it; the plan carries one program.
 */
export function applyOciSeccomp(plan: HelperPlan, sc: OciSeccomp, suppressSync: boolean): void {
  if (suppressSync) throw notYet("--suppress-sync= with an OCI bundle's seccomp filter (linux.seccomp)");
  try {
    plan.seccomp = nspawnOciSeccompBytes(sc);
  } catch (e) {
    if (e instanceof OciSeccompError) throw new ContainerError(e.message);
    throw e;
  }
  plan.noNewPrivileges = true;
}
