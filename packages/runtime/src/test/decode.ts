/**
 * The helper's real decoder, for unit tests: `nspawn-helper --decode` (native/plan-dump.c) reads a message on stdin and
 * prints what it decoded as canonical JSON (every integer a decimal string, every list and flag always there, what
 * was not given left out); canonicalPlan() and friends say what that must be for what was encoded.
 */
import { execaSync } from 'execa';
import type { ExecInRequest, HelperPlan } from '../protocol.js';
import { helperPath } from '../helper-path.js';

export type Decoded = { ok: true; value: unknown } | { ok: false; error: string; status: number | null };

/** MESSAGE through the helper's decoder. */
export function decodeWithHelper(message: Uint8Array): Decoded {
  const r = execaSync(helperPath(), ['--decode'], { input: message, maxBuffer: 1 << 28, reject: false, stripFinalNewline: false });
  // not started at all (ENOENT, EACCES): an error; an exit status is the decoder's answer
  if (r.failed && r.exitCode === undefined) throw new Error(r.message);
  if (r.exitCode === 0) return { ok: true, value: JSON.parse(r.stdout) };
  return { ok: false, error: r.stderr.trim(), status: r.exitCode ?? null };
}

/** the decoded value, or a thrown error with the helper's message */
export function decoded(message: Uint8Array): unknown {
  const d = decodeWithHelper(message);
  if (!d.ok) throw new Error(`the helper refused: ${d.error}`);
  return d.value;
}

const n = (x: number | bigint) => String(x);
const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const opt = <K extends string, V>(k: K, v: V | undefined): { [P in K]?: V } => (v === undefined ? {} : ({ [k]: v } as { [P in K]: V }));

/** What the decoder must make of plan P. */
export function canonicalPlan(p: HelperPlan): unknown {
  const h = p.handoff;
  return {
    root: p.root,
    cloneFlags: n(p.cloneFlags),
    sync: p.sync,
    ...opt('cgnsLate', p.cgnsLate || undefined),
    ...opt('cgroupMounts', p.cgnsLate ? { from: n(p.cgroupMounts?.from ?? p.ops.length), to: n(p.cgroupMounts?.to ?? p.ops.length) } : undefined),
    ...opt('resetLoginuid', p.resetLoginuid || undefined),
    ...opt('usermap', p.usermap && { shift: n(p.usermap.shift), range: n(p.usermap.range) }),
    ...opt('idmap', p.idmap && { shift: n(p.idmap.shift), range: n(p.idmap.range) }),
    ...opt('hostname', p.hostname),
    ops: p.ops.map((o) => ({
      kind: o.kind,
      flags: n(o.flags ?? 0),
      source: o.source ?? '',
      target: o.target,
      fstype: o.fstype ?? '',
      mountFlags: n(o.mountFlags ?? 0),
      data: o.data ?? '',
      mode: n(o.mode ?? 0),
      dev: n(o.dev ?? 0),
    })),
    console: p.console,
    ...opt('personality', p.personality === undefined ? undefined : n(p.personality)),
    rlimits: p.rlimits.map((r) => ({ resource: n(r.resource), soft: String(r.soft), hard: String(r.hard) })),
    ...opt('uid', p.uid === undefined ? undefined : n(p.uid)),
    ...opt('gid', p.gid === undefined ? undefined : n(p.gid)),
    ...opt('groups', p.groups?.map(n)),
    ...opt('chdir', p.chdir),
    noNewPrivileges: p.noNewPrivileges === true,
    ...opt('oomScoreAdjust', p.oomScoreAdjust === undefined ? undefined : String(p.oomScoreAdjust)),
    ...opt('cpuAffinity', p.cpuAffinity?.length ? [...new Set(p.cpuAffinity)].sort((a, b) => a - b).map(n) : undefined),
    ...opt(
      'capabilities',
      p.capabilities && {
        bounding: n(p.capabilities.bounding),
        effective: n(p.capabilities.effective),
        permitted: n(p.capabilities.permitted),
        inheritable: n(p.capabilities.inheritable),
        ambient: n(p.capabilities.ambient),
      },
    ),
    ...opt('capabilityWarning', p.capabilityWarning),
    sessionKeyring: p.sessionKeyring === true,
    ...opt('seccomp', p.seccomp && hex(p.seccomp)),
    seccompWarnings: p.seccompWarnings ?? [],
    ...opt('seccompOci', p.seccompOci && (p.seccompOci.flags || p.seccompOci.late) ? { flags: n(p.seccompOci.flags), late: p.seccompOci.late } : undefined),
    ...opt('deviceProgram', p.deviceProgram && { cgroup: p.deviceProgram.cgroup, program: hex(p.deviceProgram.program), optional: p.deviceProgram.optional === true }),
    asPid2: p.asPid2,
    loopback: p.loopback,
    ...opt('volatileMode', p.volatileMode),
    ...opt('lateSync', p.lateSync ? true : undefined),
    ...opt('leaveAfterStart', p.lateSync ? p.leaveAfterStart === true : undefined),
    ...opt('bindCopiesFirst', p.bindCopiesFirst ? true : undefined),
    ...opt('ociFds', p.ociFds && { consoleSocket: String(p.ociFds.consoleSocket ?? -1), pass: p.ociFds.pass.map(n) }),
    bindMaps: (p.bindMaps ?? []).map((m) => ({ uid: n(m.uid), hostUid: n(m.hostUid), gid: n(m.gid), hostGid: n(m.hostGid) })),
    blobs: (p.blobs ?? []).map(hex),
    ...opt('heldFds', p.heldFds?.length ? p.heldFds.map(n) : undefined),
    ...opt(
      'imageSteps',
      p.imageSteps?.length
        ? p.imageSteps.map((s) => ({ op: s.op, source: s.source, target: s.target, fstype: s.fstype, data: s.data, flags: n(s.flags), mode: n(s.mode), mkdir: s.mkdir, ...(s.idmap ? { idmap: true } : {}) }))
        : undefined,
    ),
    ...opt('pivotRoot', p.pivotRoot && (p.pivotRoot.oldRoot ? { newRoot: p.pivotRoot.newRoot, oldRoot: p.pivotRoot.oldRoot } : { newRoot: p.pivotRoot.newRoot })),
    net: {
      steps: (p.net?.steps ?? []).map((s) =>
        s.kind === 'up'
          ? { kind: 'up', ifname: s.ifname }
          : s.kind === 'address'
            ? { kind: 'address', ifname: s.ifname, family: n(s.family), address: s.address, prefixLength: n(s.prefixLength) }
            : { kind: 'route', ifname: s.ifname, family: n(s.family), gateway: s.gateway },
      ),
      ...opt('netns', p.net?.netns),
    },
    searchPath: p.searchPath,
    env: p.env,
    stubEnv: p.stubEnv,
    argv: p.argv,
    fallback: p.fallback,
    fallbackArgs: p.fallbackArgs ?? [],
    finalNewline: p.finalNewline === true,
    ...opt('consoleSize', p.consoleSize && { width: String(p.consoleSize.width), height: String(p.consoleSize.height) }),
    survive: p.survive === true,
    ...opt('stdoutPath', p.stdoutPath),
    ...opt('notify', p.notify && { notifyReady: p.notify.notifyReady, restartExits: p.notify.restartExits }),
    cgroup: { v1: p.cgroup?.v1 ?? [], ...opt('unified', p.cgroup?.unified) },
    cgroupOps: (p.cgroupOps ?? []).map((o) =>
      o.kind === 'mkdir'
        ? { kind: 'mkdir', path: o.path, exclusive: o.exclusive, busy: o.busy }
        : o.kind === 'write'
          ? { kind: 'write', path: o.path, data: o.data }
          : { kind: 'chown', path: o.path, uid: n(o.uid), gid: n(o.gid) },
    ),
    locks: (p.locks ?? []).map((l) => ({ path: l.path, exclusive: l.exclusive, busy: l.busy })),
    inheritedLocks: (p.inheritedLocks ?? []).map((l) => ({ fd: n(l.fd), path: l.path, exclusive: l.exclusive })),
    removeSubvolumes: p.removeSubvolumes ?? [],
    removeMounts: p.removeMounts ?? [],
    removeTrees: p.removeTrees ?? [],
    ...opt(
      'handoff',
      h && {
        quiet: h.quiet,
        killSignal: n(h.killSignal),
        keepUnit: h.keepUnit,
        messages: h.messages,
        signalNames: h.signalNames,
        removeCgroups: h.removeCgroups,
        ...opt('killFile', h.killFile),
        removeSlices: h.removeSlices,
        ...opt('sliceMarker', h.sliceMarker),
        reexec: h.reexec,
      },
    ),
  };
}

/** What the decoder must make of exec-in request R (as spawnIn() and bindIn() send it). */
export function canonicalExecIn(r: ExecInRequest): unknown {
  return {
    leader: n(r.leader),
    command: r.command ?? [],
    env: r.env ?? [],
    uid: n(r.uid ?? 0),
    gid: n(r.gid ?? 0),
    groups: (r.groups ?? []).map(n),
    ...opt('cwd', r.cwd),
    cgroups: r.cgroups ?? [],
    pty: r.pty === true,
    ...opt('consoleSocketFd', r.consoleSocketFd === undefined ? undefined : n(r.consoleSocketFd)),
    ...opt('passFds', r.passFds?.length ? r.passFds.map(n) : undefined),
    ...opt('bind', r.bind && { source: r.bind.source, destination: r.bind.destination, readOnly: r.bind.readOnly === true, mkdir: r.bind.mkdir === true }),
  };
}
