import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeExecIn, encodeMoveBack, encodePlan, type ExecInRequest, type HelperPlan, type Op, type OpKind, parseHelperLine } from './protocol.js';
import { planContainer } from './plan.js';
import { canonicalExecIn, canonicalPlan, decoded, decodeWithHelper } from './test/decode.js';
import { bareHost, baseConfig, basePlan, emptyTree } from './test/fixtures.js';

/** every field of a plan given, for one full round trip */
const full: HelperPlan = basePlan({
  root: '/var/lib/machines/x',
  cloneFlags: 0x7e020000,
  sync: true,
  usermap: { shift: 0x5e0000, range: 65536 },
  idmap: { shift: 0x5e0000, range: 65536 },
  hostname: 'x',
  ops: [
    { kind: 'mount', source: 'proc', target: '/proc', fstype: 'proc', mountFlags: 14, flags: 1 },
    { kind: 'write', target: '/run/host/container-uuid', data: 'u\n', mode: 0o644, flags: 8 },
    { kind: 'mknod', target: '/dev/null', source: '/dev/null', mode: 0o20666, dev: 259 },
    { kind: 'console', target: '/dev/console' },
  ],
  console: 'interactive',
  personality: 8,
  rlimits: [
    { resource: 7, soft: 1024n, hard: 524288n },
    { resource: 3, soft: 8388608n, hard: 'infinity' },
  ],
  uid: 1000,
  gid: 1000,
  groups: [5, 27],
  chdir: '/home/u',
  noNewPrivileges: true,
  oomScoreAdjust: -500,
  cpuAffinity: [3, 0, 1, 3],
  capabilities: { bounding: 0xfcecafffn, effective: 1n, permitted: 2n, inheritable: 3n, ambient: 0xffffffffffffffffn },
  capabilityWarning: 'not in the bounding set',
  sessionKeyring: true,
  seccomp: new Uint8Array([0x20, 0, 0, 0, 4, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0xff, 0x7f]),
  seccompWarnings: ['w1', 'w2'],
  deviceProgram: { cgroup: '/sys/fs/cgroup/unified/m.scope', program: new Uint8Array([0xb7, 0x10, 0xff, 0xff, 1, 0, 0, 0]), optional: true },
  cgroup: { v1: [{ scope: '/c/pids/m.scope/tasks', home: '/c/pids/tasks' }], unified: { scope: '/c/u/m.scope', home: '/c/u/cgroup.procs' } },
  asPid2: true,
  loopback: true,
  volatileMode: 'overlay',
  lateSync: true,
  leaveAfterStart: true,
  bindCopiesFirst: true,
  ociFds: { consoleSocket: 7, pass: [4, 5, 6] },
  blobs: [new Uint8Array([0, 1, 0xff]), new Uint8Array()],
  bindMaps: [
    { uid: 60514, hostUid: 1000, gid: 60514, hostGid: 1000 },
    { uid: 60515, hostUid: 1001, gid: 60515, hostGid: 1002 },
  ],
  heldFds: [7, 9],
  imageSteps: [
    { op: 'tmpfs', source: 'nspawn-image-ephemeral', target: '', fstype: 'tmpfs', data: 'mode=0755', flags: 4, mode: 0, mkdir: false },
    { op: 'mkdir', source: '', target: 'lower', fstype: '', data: '', flags: 0, mode: 0o755, mkdir: true },
    { op: 'mount', source: '/dev/loop7', target: 'lower/root', fstype: 'ext4', data: 'discard,norecovery', flags: 5, mode: 0, mkdir: true, idmap: true },
    { op: 'overlay', source: '', target: 'root', fstype: 'overlay', data: 'lowerdir=lower/root,upperdir=upper/root,workdir=work/root', flags: 4, mode: 0, mkdir: false },
    { op: 'move', source: 'root', target: '', fstype: '', data: '', flags: 0, mode: 0, mkdir: false },
    { op: 'barrier', source: '', target: '', fstype: '', data: '', flags: 0, mode: 0, mkdir: false },
  ],
  cgnsLate: true,
  cgroupMounts: { from: 1, to: 2 },
  resetLoginuid: true,
  pivotRoot: { newRoot: '/sysroot', oldRoot: '/oldroot' },
  consoleSize: { width: 132, height: 43 },
  net: {
    steps: [
      { kind: 'up', ifname: 'host0' },
      { kind: 'address', ifname: 'host0', family: 4, address: '10.0.0.2', prefixLength: 28 },
      { kind: 'address', ifname: 'host0', family: 6, address: 'fd00::2', prefixLength: 64 },
      { kind: 'route', ifname: 'host0', family: 4, gateway: '10.0.0.1' },
    ],
    netns: '/run/netns/x',
  },
  searchPath: true,
  env: ['PATH=/bin', 'A=b=c', 'EMPTY='],
  stubEnv: ['container=systemd-nspawn'],
  argv: ['/bin/sh', '-c', 'echo "$@"', 'usermap', '65536', 'nnp'],
  fallback: [['/sbin/init', '/sbin/init'], ['/bin/sh', '-sh']],
  fallbackArgs: ['quiet', 'op'],
  finalNewline: true,
  survive: true,
  stdoutPath: '/var/log/x.log',
  notify: { notifyReady: true, restartExits: false },
  locks: [{ path: '/v/.#x.lck', exclusive: true, busy: 'Directory tree /v/x is currently busy.' }],
  removeSubvolumes: ['/b/.#machine.s'],
  removeMounts: ['/v/.#machine.a/root', '/v/.#machine.a'],
  removeTrees: ['/v/.#machine.a'],
  cgroupOps: [
    { kind: 'mkdir', path: '/c/u/m.scope', exclusive: true, busy: 'busy' },
    { kind: 'write', path: '/c/u/m.scope/x', data: ['a', 'b'] },
    { kind: 'chown', path: '/c/u/m.scope/y', uid: 0x5e0000, gid: 0x5e0000 },
  ],
  handoff: {
    messages: { ok: 'ok', fail: 'fail {}', shutdown: 'down', reboot: 'reboot', signal: 'sig {}', halt: 'halt' },
    signalNames: ['HUP', 'INT'],
    quiet: false,
    killSignal: 37,
    keepUnit: true,
    removeCgroups: ['/c/u/m.scope'],
    killFile: '/c/u/m.scope/cgroup.kill',
    removeSlices: ['/c/u/machine.slice'],
    sliceMarker: '/run/nspawn/slice',
    reexec: ['/usr/bin/node', '/x/nspawn', '--uuid=u', '-D', '/x'],
  },
});

describe('a plan through the helper\'s own decoder', () => {
  it('arrives with every record as it was sent', () => {
    expect(decoded(encodePlan(full))).toEqual(canonicalPlan(full));
  });
  it('so does what planContainer() makes', () => {
    const plan = planContainer(baseConfig({ parameters: ['/bin/sh', '-c', 'x'], environment: ['A=1'] }), bareHost(), emptyTree(), { hex128: () => '0'.repeat(32) });
    expect(decoded(encodePlan(plan))).toEqual(canonicalPlan(plan));
  });
  it('refuses an image step whose paths leave the root, or of an unknown kind', () => {
    const step = { op: 'mount' as const, source: '/dev/loop0', target: '', fstype: 'ext4', data: '', flags: 0, mode: 0, mkdir: false };
    for (const bad of [{ target: '/etc' }, { target: 'usr/../../etc' }, { op: 'move' as const, source: '../x' }, { op: 'frob' as never }, { fstype: '' }])
      expect(() => decoded(encodePlan(basePlan({ imageSteps: [{ ...step, ...bad }] }))), JSON.stringify(bad)).toThrow(/image/);
    expect(decoded(encodePlan(basePlan({ imageSteps: [step] })))).toMatchObject({ imageSteps: [{ op: 'mount', target: '' }] });
    // only a file system's mount can be idmapped
    expect(() => decoded(encodePlan(basePlan({ imageSteps: [{ ...step, op: 'tmpfs', idmap: true }] })))).toThrow(/only a mount can be idmapped/);
  });
  it('refuses cgroup ops (run after the pivot on a systemd host) that are not among the ops', () => {
    const two = basePlan({ ops: [{ kind: 'mkdir', target: '/a' }, { kind: 'mkdir', target: '/b' }], cgnsLate: true });
    expect(decoded(encodePlan({ ...two, cgroupMounts: { from: 0, to: 2 } }))).toMatchObject({ cgroupMounts: { from: '0', to: '2' } });
    expect(decoded(encodePlan(two))).toMatchObject({ cgroupMounts: { from: '2', to: '2' } });
    for (const bad of [{ from: 0, to: 3 }, { from: 2, to: 1 }])
      expect(() => decoded(encodePlan({ ...two, cgroupMounts: bad })), JSON.stringify(bad)).toThrow(/invalid plan: cgnslate: ops/);
  });
  it('an empty group list is one (setgroups() with none), no list leaves the groups alone', () => {
    expect(decoded(encodePlan(basePlan({ groups: [] })))).toMatchObject({ groups: [] });
    expect(decoded(encodePlan(basePlan()))).not.toHaveProperty('groups');
  });
});

// ---------- the property: random plans full of words that look like plan keys arrive exactly ----------

/** record names, the old format's keys, numbers, the empty string, newlines: anything a value might look like */
const TRICKY = [
  'root', 'clone', 'sync', 'usermap', 'idmap', 'op', 'console', 'arg', 'argv', 'env', 'nnp', 'uid', 'gid', 'group', 'nogroups',
  'lockfd', 'horeexec', 'handoff', 'end', 'NSPW', 'NSPAWN-PLAN-1', '', '\n', '\r\n', '0', '1', '65536', '-1', '4294967295',
  '18446744073709551615', 'pid 1', 'exit 0', '\t', ' ', 'é', '💥', '\u2028', '%s%n', '--', '-c',
];
const wellFormed = (s: string) => !s.includes('\0') && (s as unknown as { isWellFormed(): boolean }).isWellFormed();
const str = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...TRICKY) },
  { weight: 4, arbitrary: fc.string({ unit: 'grapheme', maxLength: 30 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }).filter(wellFormed) },
  { weight: 1, arbitrary: fc.integer({ min: 1000, max: 140_000 }).map((n) => 'k'.repeat(n)) },
);
const abs = str.map((s) => `/${s}`);
const strs = (max: number) => fc.array(str, { maxLength: max });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const id = fc.integer({ min: 0, max: 0xfffffffe });
const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const limit = fc.oneof(fc.constant('infinity' as const), fc.bigInt({ min: 0n, max: (1n << 63n) - 1n }));
const insns = (max: number) => fc.uint8Array({ minLength: 1, maxLength: max }).map((a) => new Uint8Array(a.length * 8).map((_, i) => a[i >> 3]! ^ i));
const OP_KINDS: OpKind[] = ['mount', 'remount', 'setattr', 'mkdir', 'mknod', 'symlink', 'write', 'rmfile', 'chown', 'umount', 'rmdir', 'console', 'notify', 'blob', 'chmod'];
const op: fc.Arbitrary<Op> = fc.record(
  {
    kind: fc.constantFrom(...OP_KINDS),
    flags: u32,
    source: str,
    target: abs,
    fstype: str,
    mountFlags: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    data: str,
    mode: u32,
    dev: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  },
  { requiredKeys: ['kind', 'target'] },
);
/** --bind SRC:DST as the planner writes it */
const bind = fc.tuple(abs, abs).map(([source, target]): Op => ({ kind: 'mount', source, target, mountFlags: 4096 | 16384, flags: 64 }));
const ifname = fc.stringMatching(/^[a-z0-9]{1,15}$/);
const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((a) => a.join('.'));
const netStep = fc.oneof(
  ifname.map((i) => ({ kind: 'up' as const, ifname: i })),
  fc.tuple(ifname, v4, fc.nat(32)).map(([i, a, l]) => ({ kind: 'address' as const, ifname: i, family: 4 as const, address: a, prefixLength: l })),
  fc.tuple(ifname, fc.integer({ min: 1, max: 0xffff })).map(([i, x]) => ({ kind: 'address' as const, ifname: i, family: 6 as const, address: `fd00::${x.toString(16)}`, prefixLength: 64 })),
  fc.tuple(ifname, v4).map(([i, g]) => ({ kind: 'route' as const, ifname: i, family: 4 as const, gateway: g })),
);

const planArb: fc.Arbitrary<HelperPlan> = fc
  .record(
    {
      root: abs,
      cloneFlags: u32,
      sync: fc.boolean(),
      usermap: fc.record({ shift: u32, range: u32 }),
      hostname: str,
      ops: fc.array(fc.oneof(op, bind), { maxLength: 40 }),
      console: fc.constantFrom('pipe' as const, 'interactive' as const, 'read-only' as const, 'passive' as const),
      personality: fc.integer({ min: 0, max: 0x7fffffff }),
      rlimits: fc.array(fc.record({ resource: fc.nat(15), soft: limit, hard: limit }), { maxLength: 16 }),
      uid: id,
      gid: id,
      groups: fc.array(id, { maxLength: 40 }),
      chdir: str,
      asPid2: fc.boolean(),
      loopback: fc.boolean(),
      volatileMode: fc.constantFrom('yes' as const, 'state' as const, 'overlay' as const),
      lateSync: fc.boolean(),
      seccompOci: fc.record({ flags: fc.nat(7), late: fc.boolean() }),
      leaveAfterStart: fc.boolean(),
      bindCopiesFirst: fc.boolean(),
      ociFds: fc.record({ consoleSocket: fc.integer({ min: -1, max: 0xffff }), pass: fc.array(fc.nat(0xffff), { maxLength: 8 }) }, { requiredKeys: ['pass'] }),
      blobs: fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 4 }),
      cgnsLate: fc.boolean(),
      resetLoginuid: fc.boolean(),
      consoleSize: fc.record({ width: fc.integer({ min: 1, max: 0xffff }), height: fc.integer({ min: 1, max: 0xffff }) }),
      pivotRoot: fc.record({ newRoot: abs, oldRoot: abs }, { requiredKeys: ['newRoot'] }),
      env: strs(60),
      argv: strs(200),
      searchPath: fc.boolean(),
      fallback: fc.array(fc.tuple(str, str), { maxLength: 4 }),
      fallbackArgs: strs(20),
      stubEnv: strs(4),
      noNewPrivileges: fc.boolean(),
      oomScoreAdjust: fc.integer({ min: -1000, max: 1000 }),
      cpuAffinity: fc.array(fc.nat(2047), { maxLength: 20 }),
      capabilities: fc.record({ bounding: u64, effective: u64, permitted: u64, inheritable: u64, ambient: u64 }),
      capabilityWarning: str,
      sessionKeyring: fc.boolean(),
      seccomp: insns(64),
      seccompWarnings: strs(4),
      deviceProgram: fc.record({ cgroup: abs, program: insns(64), optional: fc.boolean() }),
      net: fc.record({ steps: fc.array(netStep, { maxLength: 6 }), netns: str }, { requiredKeys: ['steps'] }),
      locks: fc.array(fc.record({ path: str, exclusive: fc.boolean(), busy: str }), { maxLength: 4 }),
      removeMounts: strs(4),
      cgroupOps: fc.array(
        fc.oneof(
          fc.record({ kind: fc.constant('mkdir' as const), path: str, exclusive: fc.boolean(), busy: str }),
          fc.record({ kind: fc.constant('write' as const), path: str, data: strs(4) }),
          fc.record({ kind: fc.constant('chown' as const), path: str, uid: id, gid: id }),
        ),
        { maxLength: 6 },
      ),
      handoff: fc.record({
        messages: fc.record({ ok: str, fail: str, shutdown: str, reboot: str, signal: str, halt: str }),
        signalNames: strs(64),
        quiet: fc.boolean(),
        killSignal: fc.nat(64),
        keepUnit: fc.boolean(),
        removeCgroups: strs(4),
        removeSlices: strs(2),
        reexec: strs(100),
      }),
    },
    { requiredKeys: ['root', 'cloneFlags', 'sync', 'ops', 'console', 'rlimits', 'asPid2', 'loopback', 'env', 'argv', 'searchPath', 'fallback', 'stubEnv'] },
  )
  .map((p) => p as HelperPlan);

describe('property: whatever the values, the decoder sees exactly the plan that was encoded', () => {
  it('random plans (argv, env, setenv, binds, ... full of plan-key-like words, newlines, empty and long strings)', () => {
    fc.assert(
      fc.property(planArb, (p) => {
        expect(decoded(encodePlan(p))).toEqual(canonicalPlan(p));
      }),
      { numRuns: 150 },
    );
  }, 120_000);
  it('random exec-in requests', () => {
    const req: fc.Arbitrary<ExecInRequest> = fc.oneof(
      fc.record(
        { leader: fc.integer({ min: 2, max: 0x7fffffff }), command: fc.array(str, { minLength: 1, maxLength: 50 }), env: strs(30), uid: id, gid: id, groups: fc.array(id, { maxLength: 8 }), cwd: str, cgroups: strs(8), pty: fc.boolean(), consoleSocketFd: fc.nat(0xffff), passFds: fc.array(fc.nat(0xffff), { maxLength: 6 }) },
        { requiredKeys: ['leader', 'command'] },
      ),
      fc.record({ leader: fc.integer({ min: 2, max: 0x7fffffff }), bind: fc.record({ source: abs, destination: abs, readOnly: fc.boolean(), mkdir: fc.boolean() }) }),
    );
    fc.assert(
      fc.property(req, (r) => {
        expect(decoded(encodeExecIn(r))).toEqual(canonicalExecIn(r));
      }),
      { numRuns: 60 },
    );
  }, 60_000);
  it('move-back requests', () => {
    fc.assert(
      fc.property(strs(10), (names) => {
        expect(decoded(encodeMoveBack(names))).toEqual({ ifnames: names });
      }),
      { numRuns: 30 },
    );
  }, 30_000);
});

// ---------- refusals: one parser, and it refuses what is not exactly a message ----------

// (messages laid out by hand: the encoder never makes these; ids and layout are native/wire.h's)
const le32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};
const s = (v: string) => Buffer.concat([le32(Buffer.byteLength(v)), Buffer.from(v), Buffer.from([0])]);
const u = (v: number) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(v));
  return b;
};
const rec = (id: number, ...fields: Buffer[]) => {
  const payload = Buffer.concat(fields);
  const h = Buffer.alloc(6);
  h.writeUInt16LE(id);
  h.writeUInt32LE(payload.length, 2);
  return Buffer.concat([h, payload]);
};
const END = rec(0);
const message = (body: Buffer[], o: { kind?: number; version?: number; magic?: string; length?: number } = {}) => {
  const b = Buffer.concat(body);
  const h = Buffer.alloc(12);
  h.write(o.magic ?? 'NSPW', 0, 'latin1');
  h.writeUInt16LE(o.version ?? 1, 4);
  h.writeUInt16LE(o.kind ?? 1, 6);
  h.writeUInt32LE(o.length ?? b.length, 8);
  return Buffer.concat([h, b]);
};
/** ROOT CLONE CONSOLE ENV ARGV: the least a plan is */
const minimal = [rec(1, s('/r')), rec(2, u(0)), rec(8, s('pipe')), rec(33, le32(1), s('A=1')), rec(35, le32(1), s('/bin/true'))];
const refused = (m: Buffer, why: RegExp) => {
  const d = decodeWithHelper(m);
  expect(d.ok).toBe(false);
  if (!d.ok) {
    expect(d.status).toBe(2);
    expect(d.error).toMatch(why);
    expect(d.error.split('\n')).toHaveLength(1);
  }
};

describe('the decoder refuses, with one clear line', () => {
  it('(a hand-laid message it takes, so that the refusals below are for what they say)', () => {
    expect(decoded(message([...minimal, END]))).toMatchObject({ root: '/r', console: 'pipe', env: ['A=1'], argv: ['/bin/true'] });
  });
  it('an unknown record', () => refused(message([...minimal, rec(999, s('x')), END]), /invalid plan: unknown record 999/));
  it('a singular record given twice', () => refused(message([...minimal, rec(1, s('/other')), END]), /record 'root' given twice/));
  it('a missing required record', () => refused(message([...minimal.slice(1), END]), /no 'root' record/));
  it('a record shorter than its fields', () => refused(message([...minimal, rec(6, le32(5), Buffer.from('ab')), END]), /record 'hostname', field 1: truncated/));
  it('a record longer than its fields', () => refused(message([...minimal, rec(9, u(0), Buffer.from([0])), END]), /record 'personality' has 1 bytes more than its fields/));
  it('a record past the end of the body', () => refused(message([...minimal, rec(6, s('h')).subarray(0, 8)]), /record 'hostname' truncated|truncated record header/));
  it('a body shorter than its header says', () => refused(message([...minimal, END], { length: 4096 }), /truncated: \d+ of 4096 bytes/));
  it('no end record', () => refused(message(minimal), /no end record/));
  it('garbage after the end record', () => refused(message([...minimal, END, Buffer.from('usermap 0 0')]), /trailing garbage after its end/));
  it('bytes after the message', () => refused(Buffer.concat([message([...minimal, END]), Buffer.from('x')]), /trailing bytes after the message/));
  it('a NUL inside a string, a string without its terminator', () => {
    refused(message([rec(1, le32(3), Buffer.from('a\0b\0')), ...minimal.slice(1), END]), /NUL byte/);
    refused(message([rec(1, le32(2), Buffer.from('abc')), ...minimal.slice(1), END]), /NUL byte or without its terminator/);
  });
  it('a list that claims more than the record holds (no allocation for it)', () => refused(message([...minimal.slice(0, 3), rec(33, le32(0x7fffffff)), minimal[4]!, END]), /record 'env', field 1: truncated/));
  it('a boolean that is not 0 or 1', () => refused(message([...minimal, rec(41, Buffer.from([2, 0])), END]), /a boolean of 2/));
  it('another format, version or kind', () => {
    refused(Buffer.from('142\0NSPAWN-PLAN-1\0root\0/\0'), /not a plan/);
    refused(message([...minimal, END], { version: 2 }), /format version 2/);
    refused(message([...minimal, END], { kind: 9 }), /unknown kind 9/);
    refused(message([END], { kind: 2 }), /invalid exec-in request: no 'leader' record/);
  });
  it('values the helper cannot act on: an operation, a console mode, a resource, an address it does not know', () => {
    refused(message([...minimal, rec(7, s('format'), u(0), s(''), s('/x'), s(''), u(0), s(''), u(0), u(0)), END]), /unknown operation 'format'/);
    refused(message([...minimal.slice(0, 2), rec(8, s('tty')), ...minimal.slice(3), END]), /unknown console mode 'tty'/);
    refused(message([...minimal, rec(10, u(99), u(0), u(0)), END]), /resource 99 is out of range/);
    refused(message([...minimal, rec(29, s('host0'), u(4), s('10.0.0.256'), u(24)), END]), /bad IPv4 address '10.0.0.256'/);
    refused(message([...minimal, rec(7, s('mount'), u(0), s('/a'), s('relative'), s(''), u(0), s(''), u(0), u(0)), END]), /target 'relative' is not absolute/);
  });
  it('bind-user maps out of order (the uid map would be refused by the kernel)', () => {
    const m = (id: number) => rec(61, u(id), u(1000), u(id), u(1000));
    refused(message([...minimal, m(60515), m(60514), END]), /bind-user maps are not in increasing order/);
    expect(decoded(message([...minimal, m(60514), m(60515), END]))).toMatchObject({ bindMaps: [{ uid: '60514' }, { uid: '60515' }] });
  });
  it('nothing at all', () => {
    const d = decodeWithHelper(Buffer.alloc(0));
    expect(d).toMatchObject({ ok: false, status: 2, error: 'nspawn-helper --decode: nothing on stdin' });
  });
});

describe('encodePlan refuses what it cannot send as it is', () => {
  it('a NUL byte, a lone surrogate, a number out of range', () => {
    expect(() => encodePlan(basePlan({ argv: ['a\0b'] }))).toThrow(/NUL/);
    expect(() => encodePlan(basePlan({ env: ['X=\ud800'] }))).toThrow(/lone surrogate/);
    expect(() => encodePlan(basePlan({ uid: -1 }))).toThrow(/out of range: uid -1/);
    expect(() => encodePlan(basePlan({ capabilities: { bounding: 1n << 64n, effective: 0n, permitted: 0n, inheritable: 0n, ambient: 0n } }))).toThrow(/out of range/);
    expect(() => encodeExecIn({ leader: 2, command: ['sh'], env: ['A=\0'] })).toThrow(/NUL/);
  });
});

describe('parseHelperLine', () => {
  it('parses every event', () => {
    expect(parseHelperLine('pid 42')).toEqual({ type: 'pid', pid: 42 });
    expect(parseHelperLine('ready')).toEqual({ type: 'ready' });
    expect(parseHelperLine('error mount(x): EPERM')).toEqual({ type: 'error', message: 'mount(x): EPERM' });
    expect(parseHelperLine('warning bind failed')).toEqual({ type: 'warning', message: 'bind failed' });
    expect(parseHelperLine('escape poweroff')).toEqual({ type: 'escape', action: 'poweroff' });
    expect(parseHelperLine('notify READY=1')).toEqual({ type: 'notify', message: 'READY=1' });
    expect(parseHelperLine('notify STATUS=Startup finished.')).toEqual({ type: 'notify', message: 'STATUS=Startup finished.' });
    expect(parseHelperLine('exit 3')).toEqual({ type: 'exit', code: 3 });
    expect(parseHelperLine('signal 9')).toEqual({ type: 'signal', signal: 9 });
    expect(parseHelperLine('held')).toEqual({ type: 'held' });
    expect(parseHelperLine('escape nonsense')).toBeUndefined();
    expect(parseHelperLine('bogus')).toBeUndefined();
  });
});
