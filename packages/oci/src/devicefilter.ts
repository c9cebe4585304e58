/**
 * The device policy where there is no v1 devices controller (a cgroup2-only host): the rules the v1 controller
 * would be given (deviceRules() of cgroups.ts, in order) folded as the v1 controller folds them, then a
 * BPF_PROG_TYPE_CGROUP_DEVICE program of the result, instruction for instruction as runc's devicefilter makes it
 * (libcontainer/cgroups/devices: its emulator, Rules() and deviceFilter()). The runtime's helper loads the program
 * and attaches it to the container's cgroup (plan.deviceProgram, native/devices.c) before the container's PID 1
 * exists.
 */
import { alu32K, DEV_CTX, DEVCG_ACC, DEVCG_DEV, EBPF, encodeProgram, exit, jmpK, jmpX, ldxW, mov32K, mov32X, type BpfInsn } from '@nspawn/runtime';
import { SpecError } from './spec.js';

/** One rule of the emulated controller: b or c, a number or -1 for any, the access as a set of r, w, m. */
interface Entry {
  type: 'b' | 'c';
  major: number;
  minor: number;
  access: Set<string>;
}

const key = (type: string, major: number, minor: number) => `${type} ${major}:${minor}`;
const ACCESS_ORDER = ['r', 'w', 'm'];
const accessString = (s: Set<string>) => ACCESS_ORDER.filter((c) => s.has(c)).join('');

/**
 * The v1 devices controller's behaviour on a list of writes (runc's emulator): "a" resets to allow-all (devices.allow)
 * or deny-all (devices.deny); otherwise an allow in deny-all mode (or a deny in allow-all mode) adds an exception,
 * merging the access of the same device; the other way removes access from the exception, refused where a wildcard
 * exception would still grant it (the kernel would silently ignore such a hole; runc refuses it).
 */
export class DeviceEmulator {
  defaultAllow = false;
  readonly rules = new Map<string, Entry>();

  apply(file: 'devices.allow' | 'devices.deny', rule: string): void {
    const allow = file === 'devices.allow';
    if (/^a\b/.test(rule)) {
      this.defaultAllow = allow;
      this.rules.clear();
      return;
    }
    const m = /^([bc]) (\d+|\*):(\d+|\*) ([rwm]+)$/.exec(rule);
    if (!m) throw new SpecError(`linux.resources.devices: cannot read the rule "${rule}"`);
    const e: Entry = { type: m[1] as 'b' | 'c', major: m[2] === '*' ? -1 : Number(m[2]), minor: m[3] === '*' ? -1 : Number(m[3]), access: new Set(m[4]!) };
    if (allow !== this.defaultAllow) this.add(e);
    else this.remove(e, rule);
  }

  private add(e: Entry): void {
    const k = key(e.type, e.major, e.minor);
    const old = this.rules.get(k);
    this.rules.set(k, { ...e, access: new Set([...(old?.access ?? []), ...e.access]) });
  }

  private remove(e: Entry, rule: string): void {
    for (const [major, minor] of [[-1, e.minor], [e.major, -1], [-1, -1]] as const) {
      if (major === e.major && minor === e.minor) continue;
      const partial = this.rules.get(key(e.type, major, minor));
      if (partial && [...e.access].some((c) => partial.access.has(c)))
        throw new SpecError(
          `linux.resources.devices: the rule "${rule}" cannot punch hole in existing wildcard rule "${e.type} ${major < 0 ? '*' : major}:${minor < 0 ? '*' : minor} ${accessString(partial.access)}" (not supported by the devices cgroup)`,
        );
    }
    const k = key(e.type, e.major, e.minor);
    const old = this.rules.get(k);
    if (!old) return;
    const left = new Set([...old.access].filter((c) => !e.access.has(c)));
    if (left.size === 0) this.rules.delete(k);
    else this.rules.set(k, { ...old, access: left });
  }

  /** The exceptions in runc's order (major, minor, type; any = -1 first), each with the action opposite the default. */
  ordered(): Array<Entry & { allow: boolean }> {
    return [...this.rules.values()]
      .sort((a, b) => a.major - b.major || a.minor - b.minor || (a.type < b.type ? -1 : a.type > b.type ? 1 : 0))
      .map((e) => ({ ...e, allow: !this.defaultAllow }));
  }
}

const ALL_ACCESS = DEVCG_ACC.READ | DEVCG_ACC.WRITE | DEVCG_ACC.MKNOD;

/**
 * runc's deviceFilter(): r2 = type, r3 = access, r4 = major, r5 = minor; one block per exception
 *   if r2 != TYPE goto next; [r1 = r3; r1 &= ACCESS; if r1 != r3 goto next;] [if r4 != MAJOR goto next;]
 *   [if r5 != MINOR goto next;] r0 = ALLOW; return
 * and at the end r0 = the default; return.
 */
export function deviceFilterInstructions(emu: DeviceEmulator): BpfInsn[] {
  const p: BpfInsn[] = [ldxW(2, 1, DEV_CTX.ACCESS_TYPE), alu32K(EBPF.AND, 2, 0xffff), ldxW(3, 1, DEV_CTX.ACCESS_TYPE), alu32K(EBPF.RSH, 3, 16), ldxW(4, 1, DEV_CTX.MAJOR), ldxW(5, 1, DEV_CTX.MINOR)];
  for (const r of emu.ordered()) {
    let bits = 0;
    for (const c of r.access) bits |= c === 'r' ? DEVCG_ACC.READ : c === 'w' ? DEVCG_ACC.WRITE : DEVCG_ACC.MKNOD;
    // each test jumps past the block (to the next one) when it fails: OFF is that distance from it
    const block: Array<(off: number) => BpfInsn> = [(off) => jmpK(EBPF.JNE, 2, r.type === 'c' ? DEVCG_DEV.CHAR : DEVCG_DEV.BLOCK, off)];
    if (bits !== ALL_ACCESS) block.push(() => mov32X(1, 3), () => alu32K(EBPF.AND, 1, bits), (off) => jmpX(EBPF.JNE, 1, 3, off));
    // (as runc: int32(major), the kernel compares the 64-bit register with the sign-extended immediate)
    if (r.major >= 0) block.push((off) => jmpK(EBPF.JNE, 4, r.major | 0, off));
    if (r.minor >= 0) block.push((off) => jmpK(EBPF.JNE, 5, r.minor | 0, off));
    block.push(() => mov32K(0, r.allow ? 1 : 0), () => exit());
    block.forEach((make, i) => p.push(make(block.length - i - 1)));
  }
  p.push(mov32K(0, emu.defaultAllow ? 1 : 0), exit());
  return p;
}

/** The program for the controller's writes RULES (deviceRules() of cgroups.ts), as the bytes the helper loads. */
export function deviceFilterProgram(rules: ReadonlyArray<readonly ['devices.allow' | 'devices.deny', string]>): Uint8Array {
  const emu = new DeviceEmulator();
  for (const [file, rule] of rules) emu.apply(file, rule);
  return encodeProgram(deviceFilterInstructions(emu));
}
