import type { CustomMount } from '@nspawn/settings';
import { describe, expect, it } from 'vitest';
import { alu32K, decodeProgram, DEVCG_ACC, DEVCG_DEV, EBPF, encodeProgram, exit, jmpX, ldxW, mov32K, mov32X, runDeviceProgram } from './ebpf.js';
import {
  CLOSED_POLICY_NODES,
  type DeviceFacts,
  type DeviceRule,
  deviceCgroupProgram,
  devMajorMinor,
  formatDeviceRule,
  machineDeviceRules,
  procDevicesMajors,
} from './policy.js';

const PROC_DEVICES = `Character devices:
  1 mem
  4 /dev/vc/0
  4 tty
  5 /dev/tty
  5 /dev/ptmx
 10 misc
128 ptm
136 pts
254 ndctl

Block devices:
  7 loop
254 virtblk
259 blkext
`;

const facts = (nodes: Record<string, ReturnType<DeviceFacts['node']>> = {}, pts = [136]): DeviceFacts => ({
  node: (p) => nodes[p],
  ptsMajors: () => pts,
});
const bind = (source: string, destination: string, readOnly = false, sourceInRoot = false): CustomMount =>
  ({ type: 'bind', source, destination, readOnly, recursive: true, sourceInRoot }) as CustomMount;

/** systemd-nspawn 252's policy on this kind of host, as devices.allow lines after "deny a" */
const CLOSED = ['c 1:3 rwm', 'c 1:5 rwm', 'c 1:7 rwm', 'c 1:8 rwm', 'c 1:9 rwm', 'c 5:0 rwm', 'c 5:2 rwm', 'c 0:0 rwm', 'b 0:0 rwm', 'c 136:* rw', 'c 10:200 rwm'];

describe('the device policy (DevicePolicy=closed + nspawn DeviceAllow=)', () => {
  it('is the static list, the pty slaves and /dev/net/tun, and nothing else', () => {
    expect(machineDeviceRules([], '/t', facts()).map(formatDeviceRule)).toEqual(CLOSED);
    expect(CLOSED_POLICY_NODES.map((n) => n.path)).toEqual([
      '/dev/null',
      '/dev/zero',
      '/dev/full',
      '/dev/random',
      '/dev/urandom',
      '/dev/tty',
      '/dev/ptmx',
      '/run/systemd/inaccessible/chr',
      '/run/systemd/inaccessible/blk',
    ]);
  });

  it('takes the pts majors from /proc/devices, 136 when it says nothing', () => {
    expect(procDevicesMajors(PROC_DEVICES, 'c', 'pts')).toEqual([136]);
    expect(procDevicesMajors(PROC_DEVICES, 'b', 'loop')).toEqual([7]);
    expect(procDevicesMajors(PROC_DEVICES, 'c', 'loop')).toEqual([]);
    expect(machineDeviceRules([], '/t', facts({}, [136, 137])).map(formatDeviceRule)).toContain('c 137:* rw');
    expect(machineDeviceRules([], '/t', facts({}, [])).map(formatDeviceRule)).toContain('c 136:* rw');
  });

  it('adds each bind-mounted device node: r for --bind-ro, rw for --bind; not directories, symlinks or missing sources', () => {
    const nodes = {
      '/dev/kmsg': { type: 'c' as const, major: 1, minor: 11 },
      '/dev/loop3': { type: 'b' as const, major: 7, minor: 3 },
      '/srv/data': 'other' as const,
      '/t/dev-in-tree': { type: 'c' as const, major: 4, minor: 64 },
    };
    const rules = machineDeviceRules(
      [
        bind('/dev/kmsg', '/dev/kmsg', true),
        bind('/dev/loop3', '/dev/loop3'),
        bind('/srv/data', '/data'),
        bind('/missing', '/m'),
        bind('/dev-in-tree', '/x', false, true),
        { type: 'tmpfs', destination: '/dev/kmsg', options: '' } as CustomMount,
        bind('/dev/kmsg', '/dev/kmsg2', true),
      ],
      '/t',
      facts(nodes),
    ).map(formatDeviceRule);
    expect(rules).toEqual([...CLOSED, 'c 1:11 r', 'b 7:3 rw', 'c 4:64 rw']);
  });

  it('formats wildcards like devices.allow', () => {
    expect(formatDeviceRule({ type: 'b', access: 'm' })).toBe('b *:* m');
    expect(formatDeviceRule({ type: 'c', major: 136, access: 'rw' })).toBe('c 136:* rw');
  });

  it('splits a dev_t like glibc', () => {
    expect(devMajorMinor(0x0103n)).toEqual({ major: 1, minor: 3 });
    expect(devMajorMinor((259n << 8n) | 5n)).toEqual({ major: 259, minor: 5 });
    // major 4095+1 and minor 256 use the high bits
    expect(devMajorMinor((0x1n << 44n) | (0x1n << 20n))).toEqual({ major: 4096, minor: 256 });
  });
});

/** What the rules allow, read the way devices.allow and systemd's program read them. */
function allows(rules: readonly DeviceRule[], type: 'c' | 'b', major: number, minor: number, access: string): boolean {
  return rules.some(
    (r) =>
      r.type === type &&
      (r.major === undefined || r.major === major) &&
      (r.major === undefined || r.minor === undefined || r.minor === minor) &&
      [...access].every((c) => r.access.includes(c)),
  );
}
const ACCESS = ['m', 'r', 'w', 'rw', 'rm', 'wm', 'rwm'];
const bits = (a: string) => (a.includes('m') ? DEVCG_ACC.MKNOD : 0) | (a.includes('r') ? DEVCG_ACC.READ : 0) | (a.includes('w') ? DEVCG_ACC.WRITE : 0);
const ask = (prog: Uint8Array, type: 'c' | 'b', major: number, minor: number, access: string) =>
  runDeviceProgram(prog, { type: type === 'c' ? DEVCG_DEV.CHAR : DEVCG_DEV.BLOCK, access: bits(access), major, minor });

describe('the BPF_PROG_TYPE_CGROUP_DEVICE program', () => {
  const rules = machineDeviceRules([bind('/dev/kmsg', '/dev/kmsg', true), bind('/dev/loop3', '/l')], '/t', facts({
    '/dev/kmsg': { type: 'c', major: 1, minor: 11 },
    '/dev/loop3': { type: 'b', major: 7, minor: 3 },
  }));
  const prog = deviceCgroupProgram(rules);

  it('decides like the rules for every type, access and number around them', () => {
    const majors = [0, 1, 4, 5, 7, 10, 135, 136, 137, 259];
    const minors = [0, 1, 2, 3, 5, 7, 8, 9, 11, 200, 4095];
    let checked = 0;
    for (const type of ['c', 'b'] as const)
      for (const major of majors)
        for (const minor of minors)
          for (const access of ACCESS) {
            const want = allows(rules, type, major, minor, access) ? 1 : 0;
            expect(ask(prog, type, major, minor, access), `${type} ${major}:${minor} ${access}`).toBe(want);
            checked++;
          }
    expect(checked).toBe(2 * 10 * 11 * 7);
  });

  it('allows what a container needs, refuses host devices and making other nodes', () => {
    expect(ask(prog, 'c', 1, 3, 'rw')).toBe(1); // /dev/null
    expect(ask(prog, 'c', 1, 3, 'm')).toBe(1); // copy_devnodes() makes it
    expect(ask(prog, 'c', 5, 2, 'rw')).toBe(1); // /dev/pts/ptmx
    expect(ask(prog, 'c', 136, 7, 'rw')).toBe(1); // a pty slave
    expect(ask(prog, 'c', 136, 7, 'm')).toBe(0); // but never a node for one
    expect(ask(prog, 'b', 0, 0, 'm')).toBe(1); // /run/host/inaccessible/blk
    expect(ask(prog, 'c', 1, 1, 'r')).toBe(0); // /dev/mem
    expect(ask(prog, 'c', 1, 11, 'r')).toBe(1); // --bind-ro=/dev/kmsg
    expect(ask(prog, 'c', 1, 11, 'w')).toBe(0);
    expect(ask(prog, 'c', 1, 11, 'm')).toBe(0);
    expect(ask(prog, 'b', 7, 3, 'rw')).toBe(1); // --bind=/dev/loop3
    expect(ask(prog, 'b', 7, 3, 'm')).toBe(0);
    expect(ask(prog, 'b', 254, 0, 'r')).toBe(0); // the host's disk
    expect(ask(prog, 'c', 10, 200, 'rwm')).toBe(1); // /dev/net/tun
  });

  it('denies everything with no rules, and an unknown device type', () => {
    const none = deviceCgroupProgram([]);
    expect(ask(none, 'c', 1, 3, 'r')).toBe(0);
    expect(runDeviceProgram(prog, { type: 3, access: DEVCG_ACC.READ, major: 1, minor: 3 })).toBe(0);
  });

  it('is what the verifier takes: forward jumps inside the program, r0 set before every exit, a final exit', () => {
    const insns = decodeProgram(prog);
    expect(encodeProgram(insns)).toEqual(prog);
    expect(insns.at(-1)!.code).toBe(EBPF.JMP | EBPF.EXIT);
    insns.forEach((i, pc) => {
      if ((i.code & 0x07) === EBPF.JMP && i.code !== (EBPF.JMP | EBPF.EXIT)) {
        expect(i.off, `insn ${pc}`).toBeGreaterThan(0);
        expect(pc + 1 + i.off, `insn ${pc}`).toBeLessThan(insns.length);
      }
      if (i.code === (EBPF.JMP | EBPF.EXIT)) expect(insns[pc - 1]!.code, `insn ${pc}`).toBe(EBPF.ALU64 | EBPF.MOV | EBPF.K);
    });
    // 6 loads, then per rule: its tests and "return 1"; then "return 0"
    expect(insns.length).toBeLessThan(6 + rules.length * 6 + 2);
  });

  it('refuses bad access strings', () => {
    expect(() => deviceCgroupProgram([{ type: 'c', major: 1, minor: 3, access: 'x' }])).toThrow(/rwm/);
    expect(() => deviceCgroupProgram([{ type: 'c', major: 1, minor: 3, access: '' }])).toThrow(/access/);
  });
});

describe('runDeviceProgram: the 32-bit moves and the register compare (runc\'s devicefilter uses them)', () => {
  it('r1 = r3; r1 &= READ; if r1 != r3 goto deny: allows a read only', () => {
    const prog = encodeProgram([
      ldxW(3, 1, 0),
      alu32K(EBPF.RSH, 3, 16),
      mov32X(1, 3),
      alu32K(EBPF.AND, 1, DEVCG_ACC.READ),
      jmpX(EBPF.JNE, 1, 3, 2),
      mov32K(0, 1),
      exit(),
      mov32K(0, 0),
      exit(),
    ]);
    expect(runDeviceProgram(prog, { type: DEVCG_DEV.CHAR, access: DEVCG_ACC.READ, major: 1, minor: 3 })).toBe(1);
    expect(runDeviceProgram(prog, { type: DEVCG_DEV.CHAR, access: DEVCG_ACC.READ | DEVCG_ACC.WRITE, major: 1, minor: 3 })).toBe(0);
    expect(decodeProgram(prog)[2]).toEqual({ code: EBPF.ALU | EBPF.MOV | EBPF.X, dst: 1, src: 3, off: 0, imm: 0 });
  });

  it('refuses a 32-bit move of the context pointer, as the verifier would', () => {
    expect(() => runDeviceProgram(encodeProgram([mov32X(2, 1), mov32K(0, 0), exit()]), { type: 1, access: 1, major: 0, minor: 0 })).toThrow(/context pointer/);
  });
});
