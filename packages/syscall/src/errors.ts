/** Errors of system calls: a SysError names the call, the path or descriptor, and the errno's name. */

/** A failed system call: `code` is the errno name (EBUSY, ENOTSUP...), `errno` its number. */
export class SysError extends Error {
  override name = 'SysError';
  constructor(
    message: string,
    readonly errno: number,
    readonly code: string,
  ) {
    super(message);
  }
}

// built on first use: the start path imports this module and seldom needs a name
let errnoNames: Map<number, string> | undefined;
let errnoNumbers: Record<string, number> | undefined;
function table(): Map<number, string> {
  if (!errnoNames) {
    errnoNames = new Map();
    errnoNumbers = process.getBuiltinModule('node:os').constants.errno as Record<string, number>;
    for (const [k, v] of Object.entries(errnoNumbers)) if (!errnoNames.has(v)) errnoNames.set(v, k);
  }
  return errnoNames;
}

/** errno number -> name (`2` -> `ENOENT`); unknown numbers as `E<n>` */
export function errnoName(n: number): string {
  return table().get(n) ?? `E${n}`;
}

/** errno name -> number (`ENOENT` -> 2); 0 when unknown */
export function errnoNumber(code: string): number {
  table();
  return errnoNumbers![code] ?? 0;
}

/** A SysError for CODE (`sysErrorOf('EBUSY', 'x is busy')`). */
export function sysErrorOf(code: string, message: string): SysError {
  return new SysError(message, errnoNumber(code), code);
}

/** Wraps a SysError (or a Node errno exception) with a message naming what failed, keeping its code. */
export function sysError(what: string, e: unknown): Error {
  if (e instanceof SysError) return new SysError(`${what}: ${e.code}`, e.errno, e.code);
  const n = e as NodeJS.ErrnoException;
  if (n && typeof n.code === 'string') return new SysError(`${what}: ${n.code}`, n.errno ?? 0, n.code);
  return e as Error;
}

/** The `code` of an error (a SysError's or Node's), if it has one. */
export function errCode(e: unknown): string | undefined {
  const c = (e as { code?: unknown } | undefined)?.code;
  return typeof c === 'string' ? c : undefined;
}
