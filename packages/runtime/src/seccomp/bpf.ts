/**
 * Classic BPF as seccomp uses it: the instruction encoding (struct sock_filter), the seccomp return values,
 * the audit architecture tokens, and a small interpreter of the seccomp subset of classic BPF, so a filter's
 * decisions can be checked without installing it.
 */

/** struct sock_filter */
export interface SockFilter {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

// Instruction classes, sizes, modes, operations and sources (linux/bpf_common.h).
export const BPF = {
  LD: 0x00,
  LDX: 0x01,
  ST: 0x02,
  STX: 0x03,
  ALU: 0x04,
  JMP: 0x05,
  RET: 0x06,
  MISC: 0x07,
  W: 0x00,
  IMM: 0x00,
  ABS: 0x20,
  MEM: 0x60,
  LEN: 0x80,
  ADD: 0x00,
  SUB: 0x10,
  MUL: 0x20,
  DIV: 0x30,
  OR: 0x40,
  AND: 0x50,
  LSH: 0x60,
  RSH: 0x70,
  NEG: 0x80,
  MOD: 0x90,
  XOR: 0xa0,
  JA: 0x00,
  JEQ: 0x10,
  JGT: 0x20,
  JGE: 0x30,
  JSET: 0x40,
  K: 0x00,
  X: 0x08,
  A: 0x10,
  TAX: 0x00,
  TXA: 0x80,
} as const;

/** Return values of a seccomp filter (linux/seccomp.h). */
export const SECCOMP_RET = {
  KILL_PROCESS: 0x80000000,
  KILL_THREAD: 0x00000000,
  TRAP: 0x00030000,
  ERRNO: 0x00050000,
  USER_NOTIF: 0x7fc00000,
  TRACE: 0x7ff00000,
  LOG: 0x7ffc0000,
  ALLOW: 0x7fff0000,
  ACTION_FULL: 0xffff0000,
  DATA: 0x0000ffff,
} as const;

/** AUDIT_ARCH_* values found in seccomp_data.arch (linux/audit.h). */
export const AUDIT_ARCH = {
  X86_64: 0xc000003e,
  /** x32 shares x86_64's token; its system call numbers carry __X32_SYSCALL_BIT */
  I386: 0x40000003,
  AARCH64: 0xc00000b7,
} as const;

/** The kernel refuses longer programs (BPF_MAXINSNS). */
export const BPF_MAXINSNS = 4096;

/** Offsets in struct seccomp_data: nr, arch, instruction_pointer, args[6] (64-bit, little-endian here). */
export const SECCOMP_DATA = {
  nr: 0,
  arch: 4,
  ip: 8,
  argLo: (i: number) => 16 + 8 * i,
  argHi: (i: number) => 20 + 8 * i,
} as const;

export const bpfStmt = (code: number, k: number): SockFilter => ({ code, jt: 0, jf: 0, k: k >>> 0 });
export const bpfJump = (code: number, k: number, jt: number, jf: number): SockFilter => ({ code, jt, jf, k: k >>> 0 });

/** The program as the kernel takes it: 8 bytes per instruction (u16 code, u8 jt, u8 jf, u32 k; host order). */
export function encodeFilter(prog: readonly SockFilter[]): Uint8Array {
  const b = new Uint8Array(prog.length * 8);
  const v = new DataView(b.buffer);
  prog.forEach((ins, i) => {
    v.setUint16(i * 8, ins.code, true);
    v.setUint8(i * 8 + 2, ins.jt);
    v.setUint8(i * 8 + 3, ins.jf);
    v.setUint32(i * 8 + 4, ins.k >>> 0, true);
  });
  return b;
}

export function decodeFilter(bytes: Uint8Array): SockFilter[] {
  if (bytes.length % 8 !== 0) throw new Error('a BPF program is a multiple of 8 bytes');
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: SockFilter[] = [];
  for (let i = 0; i < bytes.length; i += 8)
    out.push({ code: v.getUint16(i, true), jt: v.getUint8(i + 2), jf: v.getUint8(i + 3), k: v.getUint32(i + 4, true) });
  return out;
}

/** struct seccomp_data, as the interpreter reads it. */
export interface SeccompData {
  nr: number;
  arch: number;
  instructionPointer?: bigint;
  /** up to six arguments, as 64-bit values (missing ones are 0) */
  args?: ReadonlyArray<bigint | number>;
}

function dataWord(d: SeccompData, off: number): number {
  if (off === SECCOMP_DATA.nr) return d.nr >>> 0;
  if (off === SECCOMP_DATA.arch) return d.arch >>> 0;
  const word64 = (x: bigint | number | undefined, hi: boolean) => {
    const v = BigInt.asUintN(64, BigInt(x ?? 0));
    return Number(hi ? v >> 32n : v & 0xffffffffn);
  };
  if (off === 8 || off === 12) return word64(d.instructionPointer, off === 12);
  if (off >= 16 && off < 64 && off % 4 === 0) return word64(d.args?.[(off - 16) >> 3], off % 8 === 4);
  throw new Error(`load outside struct seccomp_data (offset ${off})`);
}

/**
 * Runs PROG on DATA the way the kernel's seccomp does and returns the 32-bit action. Throws on what the
 * kernel would refuse at load time or at run time (a jump out of the program, a missing return, an
 * instruction outside seccomp's subset).
 */
export function runFilter(prog: readonly SockFilter[], data: SeccompData): number {
  if (prog.length === 0 || prog.length > BPF_MAXINSNS) throw new Error(`bad program length ${prog.length}`);
  let A = 0;
  let X = 0;
  const M = new Uint32Array(16);
  for (let pc = 0; pc < prog.length; pc++) {
    const { code, jt, jf, k } = prog[pc]!;
    const cls = code & 0x07;
    switch (cls) {
      case BPF.LD:
      case BPF.LDX: {
        const mode = code & 0xe0;
        let v: number;
        if (mode === BPF.ABS && (code & 0x18) === BPF.W && cls === BPF.LD) v = dataWord(data, k);
        else if (mode === BPF.LEN) v = 64;
        else if (mode === BPF.IMM) v = k;
        else if (mode === BPF.MEM && k < 16) v = M[k]!;
        else throw new Error(`pc ${pc}: load 0x${code.toString(16)} not allowed in seccomp`);
        if (cls === BPF.LD) A = v >>> 0;
        else X = v >>> 0;
        break;
      }
      case BPF.ST:
      case BPF.STX:
        if (k >= 16) throw new Error(`pc ${pc}: bad scratch slot ${k}`);
        M[k] = cls === BPF.ST ? A : X;
        break;
      case BPF.ALU: {
        const src = code & BPF.X ? X : k;
        switch (code & 0xf0) {
          case BPF.ADD:
            A = (A + src) >>> 0;
            break;
          case BPF.SUB:
            A = (A - src) >>> 0;
            break;
          case BPF.MUL:
            A = Math.imul(A, src) >>> 0;
            break;
          case BPF.DIV:
            if (src === 0) return 0; // the kernel's classic BPF returns 0 (kill) on division by zero
            A = Math.floor(A / src) >>> 0;
            break;
          case BPF.MOD:
            if (src === 0) return 0;
            A = A % src >>> 0;
            break;
          case BPF.OR:
            A = (A | src) >>> 0;
            break;
          case BPF.AND:
            A = (A & src) >>> 0;
            break;
          case BPF.XOR:
            A = (A ^ src) >>> 0;
            break;
          case BPF.LSH:
            A = src >= 32 ? 0 : (A << src) >>> 0;
            break;
          case BPF.RSH:
            A = src >= 32 ? 0 : A >>> src;
            break;
          case BPF.NEG:
            A = -A >>> 0;
            break;
          default:
            throw new Error(`pc ${pc}: bad ALU op 0x${code.toString(16)}`);
        }
        break;
      }
      case BPF.JMP: {
        const op = code & 0xf0;
        let target: number;
        if (op === BPF.JA) target = pc + 1 + k;
        else {
          const src = code & BPF.X ? X : k;
          let cond: boolean;
          if (op === BPF.JEQ) cond = A === src;
          else if (op === BPF.JGT) cond = A > src;
          else if (op === BPF.JGE) cond = A >= src;
          else if (op === BPF.JSET) cond = (A & src) !== 0;
          else throw new Error(`pc ${pc}: bad jump 0x${code.toString(16)}`);
          target = pc + 1 + (cond ? jt : jf);
        }
        if (target >= prog.length) throw new Error(`pc ${pc}: jump out of the program`);
        pc = target - 1;
        break;
      }
      case BPF.RET:
        if ((code & 0x18) === BPF.A) return A >>> 0;
        if ((code & 0x18) === BPF.K) return k >>> 0;
        throw new Error(`pc ${pc}: bad return 0x${code.toString(16)}`);
      case BPF.MISC:
        if ((code & 0xf8) === BPF.TAX) X = A;
        else if ((code & 0xf8) === BPF.TXA) A = X;
        else throw new Error(`pc ${pc}: bad misc op 0x${code.toString(16)}`);
        break;
    }
  }
  throw new Error('the program ends without a return');
}

/** The precedence the kernel gives actions when several filters are stacked: lower value wins. */
function actionRank(ret: number): number {
  const action = (ret & SECCOMP_RET.ACTION_FULL) | 0; // signed, as ACTION_ONLY() in the kernel
  return action;
}

/**
 * Runs stacked filters the way the kernel does (seccomp_run_filters): every filter sees the call, the most
 * recently installed first, and the result with the strongest action wins; among equal actions, the most
 * recent filter's data wins. FILTERS is in installation order.
 */
export function runFilters(filters: ReadonlyArray<readonly SockFilter[]>, data: SeccompData): number {
  let ret = SECCOMP_RET.ALLOW as number;
  for (let i = filters.length - 1; i >= 0; i--) {
    const cur = runFilter(filters[i]!, data);
    if (actionRank(cur) < actionRank(ret)) ret = cur;
  }
  return ret >>> 0;
}

/** A readable form of one instruction, for messages and debugging. */
export function disassemble(prog: readonly SockFilter[]): string[] {
  return prog.map(({ code, jt, jf, k }, pc) => {
    const cls = code & 7;
    const hex = `0x${k.toString(16)}`;
    if (cls === BPF.LD && (code & 0xe0) === BPF.ABS) return `${pc}: ld [${k}]`;
    if (cls === BPF.RET) return `${pc}: ret ${hex}`;
    if (cls === BPF.JMP) {
      const op = code & 0xf0;
      if (op === BPF.JA) return `${pc}: ja ${pc + 1 + k}`;
      const name = { [BPF.JEQ]: 'jeq', [BPF.JGT]: 'jgt', [BPF.JGE]: 'jge', [BPF.JSET]: 'jset' }[op] ?? '?';
      return `${pc}: ${name} ${code & BPF.X ? 'x' : hex} ? ${pc + 1 + jt} : ${pc + 1 + jf}`;
    }
    if (cls === BPF.ALU) return `${pc}: alu 0x${code.toString(16)} ${hex}`;
    return `${pc}: 0x${code.toString(16)} ${jt} ${jf} ${hex}`;
  });
}
