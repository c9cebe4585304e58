// The device policy as a cgroup BPF program (src/devicefilter.ts): the instructions against runc's own expected
// listings (libcontainer/cgroups/devices/devicefilter_test.go), and the decisions through the runtime's interpreter.
import { decodeProgram, DEVCG_ACC, DEVCG_DEV, EBPF, runDeviceProgram, type BpfInsn } from '@nspawn/runtime';
import { describe, expect, it } from 'vitest';
import { deviceFilterProgram, deviceRules } from '../src/index.js';

/** An instruction as cilium/ebpf's asm prints it (runc's tests), jumps without their offset. */
function show(i: BpfInsn): string {
  switch (i.code) {
    case EBPF.LDX | EBPF.MEM | EBPF.W:
      return `LdXMemW dst: r${i.dst} src: r${i.src} off: ${i.off} imm: 0`;
    case EBPF.ALU | EBPF.AND | EBPF.K:
      return `AndImm32 dst: r${i.dst} imm: ${i.imm}`;
    case EBPF.ALU | EBPF.RSH | EBPF.K:
      return `RShImm32 dst: r${i.dst} imm: ${i.imm}`;
    case EBPF.ALU | EBPF.MOV | EBPF.K:
      return `MovImm32 dst: r${i.dst} imm: ${i.imm}`;
    case EBPF.ALU | EBPF.MOV | EBPF.X:
      return `MovReg32 dst: r${i.dst} src: r${i.src}`;
    case EBPF.JMP | EBPF.JNE | EBPF.K:
      return `JNEImm dst: r${i.dst} imm: ${i.imm}`;
    case EBPF.JMP | EBPF.JNE | EBPF.X:
      return `JNEReg dst: r${i.dst} src: r${i.src}`;
    case EBPF.JMP | EBPF.EXIT:
      return 'Exit';
    default:
      return `? 0x${i.code.toString(16)}`;
  }
}

/** runc's expected listing: the instructions, jumps without "off: -1" and their block label, and each jump's block. */
function runcListing(text: string): { insns: string[]; targets: number[] } {
  const insns: string[] = [];
  const targets: number[] = [];
  const blockStart = new Map<number, number>();
  const pending: Array<[number, number]> = [];
  for (const raw of text.split('\n')) {
    const l = raw.trim();
    const b = /^block-(\d+):$/.exec(l);
    if (b) blockStart.set(Number(b[1]), insns.length);
    const m = /^\d+: (.*)$/.exec(l);
    if (!m) continue;
    const j = /<block-(\d+)>$/.exec(m[1]!);
    if (j) pending.push([insns.length, Number(j[1])]);
    insns.push(m[1]!.replace(/ off: -1/, '').replace(/ <block-\d+>$/, ''));
  }
  for (const [at, block] of pending) targets[at] = blockStart.get(block)!;
  return { insns, targets };
}

function check(program: Uint8Array, expected: string): void {
  const prog = decodeProgram(program);
  const want = runcListing(expected);
  expect(prog.map(show)).toEqual(want.insns);
  prog.forEach((i, pc) => {
    if ((i.code & 0x07) === EBPF.JMP && i.code !== (EBPF.JMP | EBPF.EXIT)) expect(pc + 1 + i.off, `jump at ${pc}`).toBe(want.targets[pc]);
  });
}

const LOAD = `
  0: LdXMemW dst: r2 src: r1 off: 0 imm: 0
  1: AndImm32 dst: r2 imm: 65535
  2: LdXMemW dst: r3 src: r1 off: 0 imm: 0
  3: RShImm32 dst: r3 imm: 16
  4: LdXMemW dst: r4 src: r1 off: 4 imm: 0
  5: LdXMemW dst: r5 src: r1 off: 8 imm: 0`;

const c = (major: number, minor: number) => ({ type: DEVCG_DEV.CHAR, major, minor });
const b = (major: number, minor: number) => ({ type: DEVCG_DEV.BLOCK, major, minor });
const { READ: R, WRITE: W, MKNOD: M } = DEVCG_ACC;

describe('deviceFilterProgram: runc\'s devicefilter, instruction for instruction', () => {
  it('no rules: reject everything (TestDeviceFilter_Nil)', () => {
    check(deviceFilterProgram([]), `${LOAD}\nblock-0:\n 6: MovImm32 dst: r0 imm: 0\n 7: Exit`);
  });

  it('runc\'s allowed devices, what every container gets after its rules (TestDeviceFilter_BuiltInAllowList)', () => {
    const blocks = [
      [1, -1, -1, 1], [2, -1, -1, 1],
      [2, 1, 3], [2, 1, 5], [2, 1, 7], [2, 1, 8], [2, 1, 9], [2, 5, 0], [2, 5, 2], [2, 10, 200], [2, 136, -1],
    ];
    let text = LOAD;
    let n = 6;
    blocks.forEach(([type, major, minor, access], k) => {
      text += `\nblock-${k}:\n ${n++}: JNEImm dst: r2 off: -1 imm: ${type} <block-${k + 1}>`;
      if (access !== undefined) text += `\n ${n++}: MovReg32 dst: r1 src: r3\n ${n++}: AndImm32 dst: r1 imm: ${access}\n ${n++}: JNEReg dst: r1 off: -1 src: r3 <block-${k + 1}>`;
      if (major! >= 0) text += `\n ${n++}: JNEImm dst: r4 off: -1 imm: ${major} <block-${k + 1}>`;
      if (minor! >= 0) text += `\n ${n++}: JNEImm dst: r5 off: -1 imm: ${minor} <block-${k + 1}>`;
      text += `\n ${n++}: MovImm32 dst: r0 imm: 1\n ${n++}: Exit`;
    });
    text += `\nblock-${blocks.length}:\n ${n++}: MovImm32 dst: r0 imm: 0\n ${n++}: Exit`;
    check(deviceFilterProgram(deviceRules([], [])), text);
  });

  it('allow all but one device (TestDeviceFilter_PrivilegedExceptSingleDevice), and the "weird" order (TestDeviceFilter_Weird)', () => {
    const expected = `${LOAD}\nblock-0:\n 6: JNEImm dst: r2 off: -1 imm: 1 <block-1>\n 7: JNEImm dst: r4 off: -1 imm: 8 <block-1>\n 8: JNEImm dst: r5 off: -1 imm: NN <block-1>\n 9: MovImm32 dst: r0 imm: 0\n 10: Exit\nblock-1:\n 11: MovImm32 dst: r0 imm: 1\n 12: Exit`;
    check(deviceFilterProgram([['devices.allow', 'a'], ['devices.deny', 'b 8:0 rwm']]), expected.replace('NN', '0'));
    check(deviceFilterProgram([['devices.deny', 'b 8:1 rwm'], ['devices.allow', 'a'], ['devices.deny', 'b 8:2 rwm']]), expected.replace('NN', '2'));
    check(deviceFilterProgram([['devices.allow', 'a']]), `${LOAD}\nblock-0:\n 6: MovImm32 dst: r0 imm: 1\n 7: Exit`);
  });
});

describe('deviceFilterProgram: decisions (the runtime\'s interpreter)', () => {
  it('runc\'s default config: deny all, then the allowed devices', () => {
    const prog = deviceFilterProgram(deviceRules([{ allow: false, access: 'rwm' }], []));
    const ask = (d: { type: number; major: number; minor: number }, access: number) => runDeviceProgram(prog, { ...d, access });
    expect(ask(c(1, 3), R | W)).toBe(1);
    expect(ask(c(1, 1), R)).toBe(0); // /dev/mem
    expect(ask(c(1, 1), M)).toBe(1); // mknod of anything
    expect(ask(b(8, 0), M)).toBe(1);
    expect(ask(b(8, 0), R)).toBe(0);
    expect(ask(c(136, 7), R | W)).toBe(1);
    expect(ask(c(10, 200), R | W)).toBe(1);
    expect(ask(c(10, 229), R | W)).toBe(0); // /dev/fuse
  });

  it('a config rule and a node of linux.devices are allowed, with the access given', () => {
    const prog = deviceFilterProgram(deviceRules([{ allow: false, access: 'rwm' }, { allow: true, type: 'c', major: 10, minor: 229, access: 'r' }], [{ type: 'c', major: 10, minor: 237 }]));
    expect(runDeviceProgram(prog, { ...c(10, 229), access: R })).toBe(1);
    expect(runDeviceProgram(prog, { ...c(10, 229), access: R | W })).toBe(0);
    expect(runDeviceProgram(prog, { ...c(10, 237), access: R | W })).toBe(1);
  });

  it('a deny after an allow takes the access away again; a hole in a wildcard rule is refused, as runc refuses it', () => {
    const prog = deviceFilterProgram(deviceRules([{ allow: false, access: 'rwm' }, { allow: true, type: 'c', major: 10, minor: 229, access: 'rw' }, { allow: false, type: 'c', major: 10, minor: 229, access: 'w' }], []));
    expect(runDeviceProgram(prog, { ...c(10, 229), access: R })).toBe(1);
    expect(runDeviceProgram(prog, { ...c(10, 229), access: W })).toBe(0);
    expect(() => deviceFilterProgram([['devices.allow', 'c 10:* rw'], ['devices.deny', 'c 10:229 w']])).toThrow(/cannot punch hole in existing wildcard rule "c 10:\* rw"/);
  });
});
