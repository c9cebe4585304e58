import { describe, expect, it } from 'vitest';
import {
  AUDIT_ARCH,
  BPF,
  bpfJump as jump,
  bpfStmt as stmt,
  decodeFilter,
  disassemble,
  encodeFilter,
  runFilter,
  runFilters,
  SECCOMP_DATA,
  SECCOMP_RET,
  type SockFilter,
} from './bpf.js';

const LD = BPF.LD | BPF.W | BPF.ABS;
const RET = BPF.RET | BPF.K;
const data = (nr: number, args: Array<number | bigint> = [], arch: number = AUDIT_ARCH.X86_64) => ({ nr, arch, args });

describe('the classic BPF interpreter', () => {
  it('loads seccomp_data fields: nr, arch, the instruction pointer and both halves of each argument', () => {
    const ret = (off: number): SockFilter[] => [stmt(LD, off), stmt(BPF.RET | BPF.A, 0)];
    const d = { nr: 59, arch: AUDIT_ARCH.I386, instructionPointer: 0x1122334455667788n, args: [1, 0xaabbccdd00000002n, -1n] };
    expect(runFilter(ret(SECCOMP_DATA.nr), d)).toBe(59);
    expect(runFilter(ret(SECCOMP_DATA.arch), d)).toBe(AUDIT_ARCH.I386);
    expect(runFilter(ret(8), d)).toBe(0x55667788);
    expect(runFilter(ret(12), d)).toBe(0x11223344);
    expect(runFilter(ret(SECCOMP_DATA.argLo(1)), d)).toBe(2);
    expect(runFilter(ret(SECCOMP_DATA.argHi(1)), d)).toBe(0xaabbccdd);
    expect(runFilter(ret(SECCOMP_DATA.argLo(2)), d)).toBe(0xffffffff); // -1 as a 64-bit value
    expect(runFilter(ret(SECCOMP_DATA.argHi(2)), d)).toBe(0xffffffff);
    expect(runFilter(ret(SECCOMP_DATA.argLo(5)), d)).toBe(0); // missing arguments are 0
    expect(() => runFilter(ret(64), d)).toThrow(/outside struct seccomp_data/);
    expect(() => runFilter(ret(2), d)).toThrow(/outside struct seccomp_data/);
  });

  it('compares unsigned: jeq, jgt, jge, jset, with K or X', () => {
    const prog = (code: number, k: number) => [stmt(LD, 0), jump(BPF.JMP | code | BPF.K, k, 0, 1), stmt(RET, 1), stmt(RET, 2)];
    expect(runFilter(prog(BPF.JEQ, 5), data(5))).toBe(1);
    expect(runFilter(prog(BPF.JEQ, 5), data(6))).toBe(2);
    expect(runFilter(prog(BPF.JGT, 5), data(6))).toBe(1);
    expect(runFilter(prog(BPF.JGT, 5), data(5))).toBe(2);
    expect(runFilter(prog(BPF.JGE, 5), data(5))).toBe(1);
    expect(runFilter(prog(BPF.JGE, 0x40000000), data(0xffffffff))).toBe(1); // unsigned
    expect(runFilter(prog(BPF.JSET, 0x1000), data(0x101000))).toBe(1);
    expect(runFilter(prog(BPF.JSET, 0x1000), data(0x100000))).toBe(2);
    const withX = [stmt(BPF.LDX | BPF.IMM, 7), stmt(LD, 0), jump(BPF.JMP | BPF.JEQ | BPF.X, 0, 0, 1), stmt(RET, 1), stmt(RET, 2)];
    expect(runFilter(withX, data(7))).toBe(1);
    expect(runFilter(withX, data(8))).toBe(2);
  });

  it('does arithmetic in 32 bits, has scratch memory and moves between A and X', () => {
    const alu = (op: number, k: number, nr: number) => runFilter([stmt(LD, 0), stmt(BPF.ALU | op | BPF.K, k), stmt(BPF.RET | BPF.A, 0)], data(nr));
    expect(alu(BPF.ADD, 1, 0xffffffff)).toBe(0);
    expect(alu(BPF.SUB, 1, 0)).toBe(0xffffffff);
    expect(alu(BPF.AND, 0x1000, 0x101000)).toBe(0x1000);
    expect(alu(BPF.OR, 1, 2)).toBe(3);
    expect(alu(BPF.XOR, 3, 1)).toBe(2);
    expect(alu(BPF.LSH, 4, 1)).toBe(16);
    expect(alu(BPF.RSH, 4, 0x80000000)).toBe(0x08000000);
    expect(alu(BPF.MUL, 3, 0x80000001)).toBe(0x80000003);
    expect(alu(BPF.DIV, 2, 9)).toBe(4);
    expect(alu(BPF.MOD, 4, 9)).toBe(1);
    expect(alu(BPF.DIV, 0, 9)).toBe(0); // division by zero ends the program with 0
    expect(alu(BPF.NEG, 0, 1)).toBe(0xffffffff);
    const mem = [stmt(LD, 0), stmt(BPF.ST, 3), stmt(BPF.LD | BPF.IMM, 0), stmt(BPF.LDX | BPF.MEM, 3), stmt(BPF.MISC | BPF.TXA, 0), stmt(BPF.RET | BPF.A, 0)];
    expect(runFilter(mem, data(42))).toBe(42);
  });

  it('refuses what the kernel refuses: jumps past the end, no return, no program, too long', () => {
    expect(() => runFilter([stmt(LD, 0), jump(BPF.JMP | BPF.JEQ | BPF.K, 0, 5, 0), stmt(RET, 0)], data(0))).toThrow(/out of the program/);
    expect(() => runFilter([stmt(LD, 0)], data(0))).toThrow(/without a return/);
    expect(() => runFilter([], data(0))).toThrow(/length/);
    expect(() => runFilter(Array.from({ length: 4097 }, () => stmt(RET, 0)), data(0))).toThrow(/length/);
    expect(() => runFilter([stmt(BPF.LD | BPF.W | 0x40, 0), stmt(RET, 0)], data(0))).toThrow(/not allowed/); // BPF_IND
  });

  it('stacked filters: the strongest action wins, and among errnos the most recently installed one', () => {
    const ret = (k: number) => [stmt(RET, k)];
    const errno = (e: number) => SECCOMP_RET.ERRNO | e;
    expect(runFilters([ret(SECCOMP_RET.ALLOW), ret(errno(1))], data(0))).toBe(errno(1));
    expect(runFilters([ret(errno(1)), ret(errno(97))], data(0))).toBe(errno(97));
    expect(runFilters([ret(errno(97)), ret(errno(1)), ret(SECCOMP_RET.ALLOW)], data(0))).toBe(errno(1));
    expect(runFilters([ret(SECCOMP_RET.KILL_PROCESS), ret(errno(1))], data(0))).toBe(SECCOMP_RET.KILL_PROCESS); // signed compare
    expect(runFilters([ret(SECCOMP_RET.LOG), ret(SECCOMP_RET.ALLOW)], data(0))).toBe(SECCOMP_RET.LOG);
  });

  it('encodes struct sock_filter as 8 little-endian bytes per instruction, and decodes them back', () => {
    const prog = [stmt(LD, 4), jump(BPF.JMP | BPF.JEQ | BPF.K, AUDIT_ARCH.X86_64, 1, 2), stmt(RET, SECCOMP_RET.ALLOW)];
    const bytes = encodeFilter(prog);
    expect(Buffer.from(bytes).toString('hex')).toBe('2000000004000000' + '150001023e0000c0' + '060000000000ff7f');
    expect(decodeFilter(bytes)).toEqual(prog);
    expect(() => decodeFilter(new Uint8Array(7))).toThrow();
    expect(disassemble(prog)).toEqual(['0: ld [4]', '1: jeq 0xc000003e ? 3 : 4', '2: ret 0x7fff0000']);
  });
});
