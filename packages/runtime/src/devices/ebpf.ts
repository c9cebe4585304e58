/**
 * The little of eBPF a cgroup device program needs: the instruction encoding (struct bpf_insn), the opcodes the
 * device policy uses, and an interpreter of exactly that subset, so a program's decisions can be checked without
 * loading it into a kernel.
 */

/** struct bpf_insn: 8 bytes, little-endian: code, dst_reg (low nibble) | src_reg (high nibble), s16 off, s32 imm. */
export interface BpfInsn {
  code: number;
  dst: number;
  src: number;
  off: number;
  imm: number;
}

// linux/bpf_common.h and linux/bpf.h
export const EBPF = {
  // classes
  LDX: 0x01,
  ALU: 0x04,
  JMP: 0x05,
  ALU64: 0x07,
  // size and mode
  W: 0x00,
  MEM: 0x60,
  // operations
  AND: 0x50,
  RSH: 0x70,
  MOV: 0xb0,
  JA: 0x00,
  JEQ: 0x10,
  JNE: 0x50,
  JSET: 0x40,
  EXIT: 0x90,
  // source
  K: 0x00,
  X: 0x08,
} as const;

/** struct bpf_cgroup_dev_ctx: u32 access_type (type in the low 16 bits, access above), u32 major, u32 minor. */
export const DEV_CTX = { ACCESS_TYPE: 0, MAJOR: 4, MINOR: 8 } as const;
/** BPF_DEVCG_DEV_* (the low half of access_type) */
export const DEVCG_DEV = { BLOCK: 1, CHAR: 2 } as const;
/** BPF_DEVCG_ACC_* (the high half of access_type) */
export const DEVCG_ACC = { MKNOD: 1, READ: 2, WRITE: 4 } as const;

export const insn = (code: number, dst: number, src: number, off: number, imm: number): BpfInsn => ({ code, dst, src, off, imm });

/** dst = *(u32 *)(src + off) */
export const ldxW = (dst: number, src: number, off: number) => insn(EBPF.LDX | EBPF.MEM | EBPF.W, dst, src, off, 0);
/** 32-bit dst OP= imm */
export const alu32K = (op: number, dst: number, imm: number) => insn(EBPF.ALU | op | EBPF.K, dst, 0, 0, imm);
/** 64-bit dst = imm */
export const mov64K = (dst: number, imm: number) => insn(EBPF.ALU64 | EBPF.MOV | EBPF.K, dst, 0, 0, imm);
/** if (dst OP imm) goto +off */
export const jmpK = (op: number, dst: number, imm: number, off: number) => insn(EBPF.JMP | op | EBPF.K, dst, 0, off, imm);
export const exit = () => insn(EBPF.JMP | EBPF.EXIT, 0, 0, 0, 0);
/** 32-bit dst = imm (runc's devicefilter: asm.Mov.Imm32) */
export const mov32K = (dst: number, imm: number) => insn(EBPF.ALU | EBPF.MOV | EBPF.K, dst, 0, 0, imm);
/** 32-bit dst = src */
export const mov32X = (dst: number, src: number) => insn(EBPF.ALU | EBPF.MOV | EBPF.X, dst, src, 0, 0);
/** if (dst OP src) goto +off */
export const jmpX = (op: number, dst: number, src: number, off: number) => insn(EBPF.JMP | op | EBPF.X, dst, src, off, 0);

export function encodeProgram(prog: readonly BpfInsn[]): Uint8Array {
  const out = new Uint8Array(prog.length * 8);
  const view = new DataView(out.buffer);
  prog.forEach((i, n) => {
    view.setUint8(n * 8, i.code);
    view.setUint8(n * 8 + 1, (i.dst & 0xf) | ((i.src & 0xf) << 4));
    view.setInt16(n * 8 + 2, i.off, true);
    view.setInt32(n * 8 + 4, i.imm, true);
  });
  return out;
}

export function decodeProgram(bytes: Uint8Array): BpfInsn[] {
  if (bytes.length % 8 !== 0) throw new Error(`an eBPF program is a multiple of 8 bytes, not ${bytes.length}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: BpfInsn[] = [];
  for (let o = 0; o < bytes.length; o += 8) {
    const regs = view.getUint8(o + 1);
    out.push({ code: view.getUint8(o), dst: regs & 0xf, src: regs >> 4, off: view.getInt16(o + 2, true), imm: view.getInt32(o + 4, true) });
  }
  return out;
}

/** What a cgroup device program is asked: the device type (DEVCG_DEV), the access bits (DEVCG_ACC), major, minor. */
export interface DeviceRequest {
  type: number;
  access: number;
  major: number;
  minor: number;
}

/**
 * Runs a BPF_PROG_TYPE_CGROUP_DEVICE program made of the instructions above on one request and returns r0 (1:
 * allow, 0: deny). Throws on anything outside that subset, on a jump out of the program and on a register read
 * before it was written, which the kernel's verifier would refuse too.
 */
export function runDeviceProgram(bytes: Uint8Array, req: DeviceRequest): number {
  const prog = decodeProgram(bytes);
  const ctx = new DataView(new ArrayBuffer(12));
  ctx.setUint32(DEV_CTX.ACCESS_TYPE, ((req.access & 0xffff) << 16) | (req.type & 0xffff), true);
  ctx.setUint32(DEV_CTX.MAJOR, req.major >>> 0, true);
  ctx.setUint32(DEV_CTX.MINOR, req.minor >>> 0, true);
  const CTX = -1n; // r1 holds the context pointer, nothing else may be dereferenced
  const reg: Array<bigint | undefined> = [undefined, CTX];
  const M64 = (1n << 64n) - 1n;
  const M32 = (1n << 32n) - 1n;
  const get = (r: number, pc: number): bigint => {
    const v = reg[r];
    if (v === undefined) throw new Error(`insn ${pc}: r${r} read before it was written`);
    return v;
  };
  const sext = (imm: number) => BigInt.asUintN(64, BigInt(imm));
  for (let pc = 0, steps = 0; ; steps++) {
    if (pc < 0 || pc >= prog.length) throw new Error(`jump out of the program (to ${pc})`);
    if (steps > 1_000_000) throw new Error('the program does not end');
    const i = prog[pc]!;
    switch (i.code) {
      case EBPF.LDX | EBPF.MEM | EBPF.W: {
        if (get(i.src, pc) !== CTX || i.off < 0 || i.off > 8 || i.off % 4 !== 0) throw new Error(`insn ${pc}: bad context load`);
        reg[i.dst] = BigInt(ctx.getUint32(i.off, true));
        break;
      }
      case EBPF.ALU | EBPF.AND | EBPF.K:
        reg[i.dst] = get(i.dst, pc) & M32 & (BigInt(i.imm) & M32);
        break;
      case EBPF.ALU | EBPF.RSH | EBPF.K:
        reg[i.dst] = (get(i.dst, pc) & M32) >> BigInt(i.imm & 31);
        break;
      case EBPF.ALU64 | EBPF.MOV | EBPF.K:
        reg[i.dst] = sext(i.imm) & M64;
        break;
      case EBPF.ALU | EBPF.MOV | EBPF.K:
        reg[i.dst] = BigInt(i.imm) & M32;
        break;
      case EBPF.ALU | EBPF.MOV | EBPF.X: {
        const v = get(i.src, pc);
        if (v === CTX) throw new Error(`insn ${pc}: 32-bit move of the context pointer`);
        reg[i.dst] = v & M32;
        break;
      }
      case EBPF.JMP | EBPF.JA:
        pc += i.off;
        break;
      case EBPF.JMP | EBPF.JEQ | EBPF.K:
        if (get(i.dst, pc) === sext(i.imm)) pc += i.off;
        break;
      case EBPF.JMP | EBPF.JNE | EBPF.K:
        if (get(i.dst, pc) !== sext(i.imm)) pc += i.off;
        break;
      case EBPF.JMP | EBPF.JNE | EBPF.X:
        if (get(i.dst, pc) !== get(i.src, pc)) pc += i.off;
        break;
      case EBPF.JMP | EBPF.JSET | EBPF.K:
        if ((get(i.dst, pc) & sext(i.imm)) !== 0n) pc += i.off;
        break;
      case EBPF.JMP | EBPF.EXIT:
        return Number(get(0, pc) & M32);
      default:
        throw new Error(`insn ${pc}: opcode 0x${i.code.toString(16)} is not part of the device program subset`);
    }
    pc++;
  }
}
