/**
 * Small ports of the C helpers systemd's parsers are built on (parse-util.c, string-util.c, utf8.c, strtoul(3)),
 * with their exact edge cases: base prefixes, leading whitespace, signs, overflow, ASCII-only case folding.
 * Nothing here throws; failures are errno names.
 */

export type Errno = 'EINVAL' | 'ERANGE' | 'EEXIST' | 'EADDRNOTAVAIL' | 'ENXIO' | 'EILSEQ' | 'EBADMSG' | 'ENOBUFS';

/** strerror() texts, for messages that end in ": %m". */
export const STRERROR: Readonly<Record<Errno, string>> = {
  EINVAL: 'Invalid argument',
  ERANGE: 'Numerical result out of range',
  EEXIST: 'File exists',
  EADDRNOTAVAIL: 'Cannot assign requested address',
  ENXIO: 'No such device or address',
  EILSEQ: 'Invalid or incomplete multibyte or wide character',
  EBADMSG: 'Bad message',
  ENOBUFS: 'No buffer space available',
};

/** strerror(errno): the text systemd's "%m" prints. */
export const errnoText = (e: Errno): string => STRERROR[e];

export type Result<T> = { ok: true; value: T } | { ok: false; errno: Errno };
export const ok = <T>(value: T): Result<T> => ({ ok: true, value });
export const fail = <T = never>(errno: Errno): Result<T> => ({ ok: false, errno });

/** WHITESPACE in systemd: " \t\n\r" */
export const WHITESPACE = ' \t\n\r';
export const UINT64_MAX = (1n << 64n) - 1n;
export const UINT32_MAX = 0xffffffff;

/** isempty() */
export const isEmpty = (s: string | undefined | null): boolean => s === undefined || s === null || s === '';

/** strstrip(): removes WHITESPACE at both ends. */
export function strstrip(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && WHITESPACE.includes(s[a]!)) a++;
  while (b > a && WHITESPACE.includes(s[b - 1]!)) b--;
  return s.slice(a, b);
}

const ASCII_LOWER = (s: string): string => s.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32));

/** parse_boolean(): ASCII case-insensitive. */
export function parseBooleanC(v: string): Result<boolean> {
  const s = ASCII_LOWER(v);
  if (s === '1' || s === 'yes' || s === 'y' || s === 'true' || s === 't' || s === 'on') return ok(true);
  if (s === '0' || s === 'no' || s === 'n' || s === 'false' || s === 'f' || s === 'off') return ok(false);
  return fail('EINVAL');
}

const isCSpace = (c: string | undefined): boolean =>
  c === ' ' || c === '\t' || c === '\n' || c === '\v' || c === '\f' || c === '\r';

function digitValue(c: string | undefined): number {
  if (c === undefined) return 99;
  const k = c.charCodeAt(0);
  if (k >= 48 && k <= 57) return k - 48;
  if (k >= 97 && k <= 122) return k - 87;
  if (k >= 65 && k <= 90) return k - 55;
  return 99;
}

interface StrtoResult {
  /** magnitude as parsed (before applying the sign) */
  magnitude: bigint;
  negative: boolean;
  /** index of the first unparsed character; 0 when nothing was converted (C: endptr == nptr) */
  end: number;
  /** the magnitude exceeded 64 bits */
  overflow: boolean;
}

/** The common part of glibc's strtol/strtoul/strtoull: whitespace, sign, base prefix, digits. */
function strto(s: string, base: number): StrtoResult {
  let i = 0;
  while (isCSpace(s[i])) i++;
  let negative = false;
  if (s[i] === '+' || s[i] === '-') {
    negative = s[i] === '-';
    i++;
  }
  const hexPrefix = s[i] === '0' && (s[i + 1] === 'x' || s[i + 1] === 'X') && digitValue(s[i + 2]) < 16;
  if (base === 0) {
    if (hexPrefix) {
      base = 16;
      i += 2;
    } else base = s[i] === '0' ? 8 : 10;
  } else if (base === 16 && hexPrefix) i += 2;
  const start = i;
  let magnitude = 0n;
  let overflow = false;
  const b = BigInt(base);
  while (digitValue(s[i]) < base) {
    magnitude = magnitude * b + BigInt(digitValue(s[i]));
    if (magnitude > UINT64_MAX) overflow = true;
    i++;
  }
  if (i === start) return { magnitude: 0n, negative: false, end: 0, overflow: false };
  return { magnitude, negative, end: i, overflow };
}

/** strtoull()/strtoul() on a 64-bit machine: returns the (wrapped) value, errno ERANGE on overflow. */
export function strtoull(s: string, base: number): { value: bigint; end: number; erange: boolean } {
  const r = strto(s, base);
  if (r.overflow) return { value: UINT64_MAX, end: r.end, erange: true };
  const value = r.negative && r.magnitude !== 0n ? (1n << 64n) - r.magnitude : r.magnitude;
  return { value, end: r.end, erange: false };
}

/** strtol()/strtoll() on a 64-bit machine. */
export function strtoll(s: string, base: number): { value: bigint; end: number; erange: boolean } {
  const r = strto(s, base);
  const max = (1n << 63n) - 1n;
  if (r.negative) {
    if (r.overflow || r.magnitude > max + 1n) return { value: -max - 1n, end: r.end, erange: true };
    return { value: -r.magnitude, end: r.end, erange: false };
  }
  if (r.overflow || r.magnitude > max) return { value: max, end: r.end, erange: true };
  return { value: r.magnitude, end: r.end, erange: false };
}

export const SAFE_ATO_REFUSE_PLUS_MINUS = 1 << 30;
export const SAFE_ATO_REFUSE_LEADING_ZERO = 1 << 29;
export const SAFE_ATO_REFUSE_LEADING_WHITESPACE = 1 << 28;
const SAFE_ATO_ALL_FLAGS = SAFE_ATO_REFUSE_PLUS_MINUS | SAFE_ATO_REFUSE_LEADING_ZERO | SAFE_ATO_REFUSE_LEADING_WHITESPACE;

function skipWhitespace(s: string): string {
  let i = 0;
  while (i < s.length && WHITESPACE.includes(s[i]!)) i++;
  return s.slice(i);
}

/** mangle_base(): Python-style "0b"/"0o" prefixes when no base was given. */
function mangleBase(s: string, base: number): { s: string; base: number } {
  if ((base & ~SAFE_ATO_ALL_FLAGS) !== 0) return { s, base };
  if (s.startsWith('0b') || s.startsWith('0B')) return { s: s.slice(2), base: 2 | (base & SAFE_ATO_ALL_FLAGS) };
  if (s.startsWith('0o') || s.startsWith('0O')) return { s: s.slice(2), base: 8 | (base & SAFE_ATO_ALL_FLAGS) };
  return { s, base };
}

/** safe_atollu_full()/safe_atou_full() with the result limited to `max`. */
function safeAtoUnsigned(s0: string, base0: number, max: bigint): Result<bigint> {
  let s = s0;
  if (base0 & SAFE_ATO_REFUSE_LEADING_WHITESPACE && (s === '' || WHITESPACE.includes(s[0]!))) return fail('EINVAL');
  s = skipWhitespace(s);
  if (base0 & SAFE_ATO_REFUSE_PLUS_MINUS && (s[0] === '+' || s[0] === '-')) return fail('EINVAL');
  if (base0 & SAFE_ATO_REFUSE_LEADING_ZERO && s[0] === '0' && s !== '0') return fail('EINVAL');
  const m = mangleBase(s, base0);
  s = m.s;
  const r = strtoull(s, m.base & ~SAFE_ATO_ALL_FLAGS);
  if (r.erange) return fail('ERANGE');
  if (r.end === 0 || r.end !== s.length) return fail('EINVAL');
  if (r.value !== 0n && s[0] === '-') return fail('ERANGE');
  if (r.value > max) return fail('ERANGE');
  return ok(r.value);
}

/** safe_atou64() (base 0 unless given, flags as systemd's SAFE_ATO_*) */
export const safeAtou64 = (s: string, base = 0): Result<bigint> => safeAtoUnsigned(s, base, UINT64_MAX);

/** safe_atou()/safe_atou32_full() */
export function safeAtou32(s: string, base = 0): Result<number> {
  const r = safeAtoUnsigned(s, base, BigInt(UINT32_MAX));
  return r.ok ? ok(Number(r.value)) : r;
}

/** safe_atou16_full() */
export function safeAtou16(s: string, base = 0): Result<number> {
  const r = safeAtoUnsigned(s, base, BigInt(UINT32_MAX));
  if (!r.ok) return r;
  return r.value > 0xffffn ? fail('ERANGE') : ok(Number(r.value));
}

/** safe_atoi(): base 0 with "0x", "0o", "0b" and C octal, whitespace allowed in front. */
export function safeAtoi(s0: string): Result<number> {
  const m = mangleBase(skipWhitespace(s0), 0);
  const r = strtoll(m.s, m.base);
  if (r.erange) return fail('ERANGE');
  if (r.end === 0 || r.end !== m.s.length) return fail('EINVAL');
  if (r.value > 2147483647n || r.value < -2147483648n) return fail('ERANGE');
  return ok(Number(r.value));
}

/** uid_is_valid() */
export const uidIsValid = (uid: number): boolean => uid !== 0xffffffff && uid !== 0xffff;

/** parse_uid(): decimal only, no sign, no leading zero or whitespace, not (uid_t)-1 or (uint16_t)-1. */
export function parseUid(s: string): Result<number> {
  const r = safeAtou32(s, 10 | SAFE_ATO_REFUSE_PLUS_MINUS | SAFE_ATO_REFUSE_LEADING_ZERO | SAFE_ATO_REFUSE_LEADING_WHITESPACE);
  if (!r.ok) return r;
  return uidIsValid(r.value) ? r : fail('ENXIO');
}

/** Length of a string in UTF-8 bytes (lone surrogates count as the 1 byte they were decoded from). */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 1;
    } else if (c >= 0xd800 && c <= 0xdfff) n += 1;
    else n += 3;
  }
  return n;
}

/** unichar_is_valid() */
function unicharIsValid(cp: number): boolean {
  if (cp >= 0x110000) return false;
  if ((cp & 0xfffff800) === 0xd800) return false;
  if (cp >= 0xfdd0 && cp <= 0xfdef) return false;
  if ((cp & 0xfffe) === 0xfffe) return false;
  return true;
}

/**
 * utf8_is_valid(): a string decoded from a file is "UTF-8 clean" when it has no lone surrogates (how
 * decodeUtf8() represents undecodable bytes) and no code point systemd refuses (U+FDD0..U+FDEF, U+xFFFE/F).
 */
export function utf8IsValid(s: string): boolean {
  for (const ch of s) if (!unicharIsValid(ch.codePointAt(0)!)) return false;
  return true;
}

/**
 * Decodes UTF-8 like a C program sees it: valid sequences become characters, every byte of an invalid sequence
 * becomes the lone surrogate U+DC00+byte (so utf8IsValid() then reports it, as systemd would).
 */
export function decodeUtf8(bytes: Uint8Array): string {
  let out = '';
  let i = 0;
  const n = bytes.length;
  while (i < n) {
    const b = bytes[i]!;
    if (b < 0x80) {
      // fast path for ASCII runs
      let j = i;
      while (j < n && bytes[j]! < 0x80) j++;
      out += String.fromCharCode(...bytes.subarray(i, Math.min(j, i + 8192)));
      i = Math.min(j, i + 8192);
      continue;
    }
    const len = b >= 0xf0 && b <= 0xf4 ? 4 : b >= 0xe0 ? (b <= 0xef ? 3 : 0) : b >= 0xc2 ? 2 : 0;
    let cp = len === 2 ? b & 0x1f : len === 3 ? b & 0x0f : b & 0x07;
    let good = len > 0 && i + len <= n;
    for (let k = 1; good && k < len; k++) {
      const c = bytes[i + k]!;
      if ((c & 0xc0) !== 0x80) good = false;
      else cp = (cp << 6) | (c & 0x3f);
    }
    if (good) {
      const min = len === 2 ? 0x80 : len === 3 ? 0x800 : 0x10000;
      if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) good = false;
    }
    if (good) {
      out += String.fromCodePoint(cp);
      i += len;
    } else {
      out += String.fromCharCode(0xdc00 + b); // b >= 0x80: U+DC80..U+DCFF
      i += 1;
    }
  }
  return out;
}

/** string_is_safe(): no control characters, quotes, backslashes or DEL. */
export function stringIsSafe(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c > 0 && c < 32) || c === 0x22 || c === 0x27 || c === 0x5c || c === 0x7f) return false;
  }
  return true;
}

/** cescape() for messages: backslash escapes for control characters, quotes and backslashes. */
export function cescape(s: string): string {
  let out = '';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '\\') out += '\\\\';
    else if (ch === '"') out += '\\"';
    else if (ch === "'") out += "\\'";
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\r') out += '\\r';
    else if (c < 32 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return out;
}
