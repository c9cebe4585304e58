/**
 * koffi (FFI to libc, prebuilt: no compiler at install) loaded on the first call that needs it, never by an import
 * of this package: a start that needs no system call of ours pays nothing. Each libc function is declared on its
 * first use.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { errnoName, SysError } from './errors.js';

/** A declared libc function: numbers, bigints, Buffers (pointers) and strings in, a number or bigint out. */
export type Fn = (...args: unknown[]) => number | bigint;

/** The part of koffi's API this package uses. */
export interface Koffi {
  load(name: string): { func(decl: string): Fn };
  errno(): number;
  alloc(type: string, len: number): unknown;
  address(ptr: unknown): bigint;
  view(ptr: unknown, len: number): ArrayBuffer;
  version?: string;
}

let koffiModule: Koffi | undefined;
let loads = 0;

/**
 * koffi itself. Its prebuilt binary is loaded directly (about 1.5 ms) rather than through koffi's loader (7-10 ms,
 * most of it platform detection in JavaScript), which stays the fallback (musl, a bundle, another layout).
 */
export function koffi(): Koffi {
  if (koffiModule) return koffiModule;
  loads++;
  const require = createRequire(import.meta.url);
  try {
    const main = require.resolve('koffi');
    const kreq = createRequire(main);
    const version = (JSON.parse(readFileSync(`${dirname(main)}/package.json`, 'utf8')) as { version: string }).version;
    const pkgDir = dirname(kreq.resolve(`@koromix/koffi-${process.platform}-${process.arch}/package.json`));
    const native = kreq(`${pkgDir}/${process.platform}_${process.arch}/koffi.node`) as Koffi;
    if (native.version === version && typeof native.load === 'function') return (koffiModule = native);
  } catch {
    // another layout: koffi's own loader
  }
  return (koffiModule = require('koffi') as Koffi);
}

/** Whether koffi has been loaded in this process (tests and benchmarks check that a path does not load it). */
export function koffiLoaded(): boolean {
  return loads > 0;
}

let libcHandle: { func(decl: string): Fn } | undefined;
const declared = new Map<string, Fn>();

/**
 * The libc function of the C declaration DECL (`'int fchmod(int fd, uint32_t mode)'`), declared on first use and
 * cached by its declaration. Loads koffi when it is the first.
 */
export function libcFn(decl: string): Fn {
  let f = declared.get(decl);
  if (!f) {
    libcHandle ??= koffi().load('libc.so.6');
    f = libcHandle.func(decl);
    declared.set(decl, f);
  }
  return f;
}

/**
 * An object whose properties are libc functions declared lazily from DECLS (name -> C declaration): a package's
 * table of the calls it makes, declared one by one as they are first used.
 */
export function libcTable<K extends string>(decls: Record<K, string>): Record<K, Fn> {
  const out = {} as Record<K, Fn>;
  for (const [k, decl] of Object.entries(decls) as Array<[K, string]>)
    Object.defineProperty(out, k, {
      configurable: true,
      enumerable: true,
      get() {
        const f = libcFn(decl);
        Object.defineProperty(out, k, { value: f, enumerable: true });
        return f;
      },
    });
  return out;
}

/** errno of the last call through koffi */
export function errno(): number {
  return koffi().errno();
}

/** the errno of the last call, as a SysError naming WHAT */
export function lastError(what: string): SysError {
  const e = errno();
  const code = errnoName(e);
  return new SysError(`${what}: ${code}`, e, code);
}

/** R as a number; a negative result throws the call's errno as a SysError naming WHAT */
export function check(r: number | bigint, what: string): number {
  const n = Number(r);
  if (n < 0) throw lastError(what);
  return n;
}

/** a NUL-terminated copy of a path or name (file names are bytes, not necessarily UTF-8) */
export function cstr(s: string | Buffer): Buffer {
  if (typeof s === 'string') return Buffer.from(`${s}\0`);
  return s.length > 0 && s[s.length - 1] === 0 ? s : Buffer.concat([s, Buffer.alloc(1)]);
}

/** native memory that stays put (its address goes into a syscall's argument struct), and a Buffer over it */
export function nativeBuffer(len: number): { address: bigint; buf: Buffer } {
  const k = koffi();
  const ptr = k.alloc('uint8_t', len);
  return { address: k.address(ptr), buf: Buffer.from(k.view(ptr, len)) };
}
