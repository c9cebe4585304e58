/**
 * --set-credential=ID:VALUE and --load-credential=ID:PATH as systemd-nspawn 252's parse_argv() reads them: the ID up
 * to the first ':' (extract_first_word(), backslash escapes taken), checked by credential_name_valid(), refused when
 * given twice; VALUE C-unescaped by cunescape(UNESCAPE_ACCEPT_NUL) into bytes; a relative PATH is one in
 * $CREDENTIALS_DIRECTORY (our own credentials), an absolute one may also be an AF_UNIX stream socket to read from.
 * systemd has no .nspawn key for credentials: only the command line gives them. Reading a PATH is the runtime's work
 * (this package touches no file).
 */
import { EXTRACT_DONT_COALESCE_SEPARATORS, extractFirstWord } from './extract-word.js';
import { type CredentialSetting, SettingsError } from './model.js';
import { pathIsNormalized } from './paths.js';

/** credential_name_valid(): filename_is_valid() && fdname_is_valid(): printable ASCII but ':', no '/', not '.'/'..', at most 255 bytes. */
export function credentialNameValid(s: string): boolean {
  if (s === '' || s === '.' || s === '..' || s.length > 255) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c >= 0x7f || c === 0x3a /* : */ || c === 0x2f /* / */) return false;
  }
  return true;
}

const hex = (c: number | undefined): number => {
  if (c === undefined) return -1;
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
};
const oct = (c: number | undefined): number => (c !== undefined && c >= 0x30 && c <= 0x37 ? c - 0x30 : -1);

/** unichar_is_valid() */
const unicharValid = (c: number): boolean =>
  c < 0x110000 && (c & 0xfffff800) !== 0xd800 && !(c >= 0xfdd0 && c <= 0xfdef) && (c & 0xfffe) !== 0xfffe;

/** utf8_encode_unichar(): any value below 2^31 (a lone surrogate too), as systemd writes it */
function utf8Encode(c: number, out: number[]): void {
  if (c < 0x80) out.push(c);
  else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 0x3f));
  else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f));
  else out.push(0xf0 | ((c >> 18) & 0x07), 0x80 | ((c >> 12) & 0x3f), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f));
}

const SIMPLE: Readonly<Record<string, number>> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, '\\': 92, '"': 34, "'": 39, s: 32 };

/**
 * cunescape(S, UNESCAPE_ACCEPT_NUL) on S's UTF-8 bytes: \a \b \f \n \r \t \v \\ \" \' \s, \xHH, \uHHHH, \UHHHHHHHH
 * (a valid code point), \OOO (at most 0377); anything else after a backslash, or a trailing one, is an error (null).
 */
export function cunescapeBytes(s: string, acceptNul = true): Uint8Array | null {
  const b = Buffer.from(s, 'utf8');
  const out: number[] = [];
  for (let i = 0; i < b.length; i++) {
    if (b[i] !== 0x5c) {
      out.push(b[i]!);
      continue;
    }
    if (i + 1 >= b.length) return null;
    const c = b[i + 1]!;
    const ch = String.fromCharCode(c);
    if (SIMPLE[ch] !== undefined) {
      out.push(SIMPLE[ch]!);
      i += 1;
    } else if (ch === 'x') {
      const a = hex(b[i + 2]);
      const d = hex(b[i + 3]);
      if (a < 0 || d < 0 || (a === 0 && d === 0 && !acceptNul)) return null;
      out.push((a << 4) | d);
      i += 3;
    } else if (ch === 'u' || ch === 'U') {
      const n = ch === 'u' ? 4 : 8;
      let v = 0;
      for (let k = 0; k < n; k++) {
        const h = hex(b[i + 2 + k]);
        if (h < 0) return null;
        v = v * 16 + h;
      }
      if (v === 0 && !acceptNul) return null;
      if (ch === 'U' && !unicharValid(v)) return null;
      utf8Encode(v, out);
      i += 1 + n;
    } else if (c >= 0x30 && c <= 0x37) {
      const a = oct(b[i + 1]);
      const d = oct(b[i + 2]);
      const e = oct(b[i + 3]);
      if (a < 0 || d < 0 || e < 0 || (a === 0 && d === 0 && e === 0 && !acceptNul)) return null;
      const m = (a << 6) | (d << 3) | e;
      if (m > 255) return null;
      out.push(m);
      i += 3;
    } else return null;
  }
  return Uint8Array.from(out);
}

/** The ID before the first ':' and the rest, or 252's refusal of OPTION's VALUE. */
function splitCredential(option: string, v: string, credentials: readonly CredentialSetting[]): { id: string; rest: string } {
  const r = extractFirstWord(v, ':', EXTRACT_DONT_COALESCE_SEPARATORS);
  if (!r.ok) throw new SettingsError(`Failed to parse ${option}= parameter: Invalid argument`, option, v);
  if (r.word === null || r.rest === null) throw new SettingsError(`Missing value for ${option}=: ${v}`, option, v);
  if (!credentialNameValid(r.word)) throw new SettingsError(`Credential name is not valid: ${r.word}`, option, v);
  if (credentials.some((c) => c.id === r.word)) throw new SettingsError(`Duplicate credential '${r.word}', refusing.`, option, v);
  return { id: r.word, rest: r.rest };
}

/** --set-credential=ID:VALUE */
export function parseSetCredential(v: string, credentials: readonly CredentialSetting[]): CredentialSetting {
  const { id, rest } = splitCredential('--set-credential', v, credentials);
  const data = cunescapeBytes(rest);
  if (data === null) throw new SettingsError(`Failed to unescape credential data: ${rest}`, '--set-credential', v);
  return { id, data };
}

/**
 * --load-credential=ID:PATH: an absolute PATH as it is (a file, or an AF_UNIX stream socket to read from), a relative
 * one inside $CREDENTIALS_DIRECTORY (absolute and normalized, else "no credentials passed at all").
 */
export function parseLoadCredential(v: string, credentials: readonly CredentialSetting[], environ: Readonly<Record<string, string | undefined>>): CredentialSetting {
  const { id, rest } = splitCredential('--load-credential', v, credentials);
  if (rest.startsWith('/')) return { id, path: rest, socket: true };
  const dir = environ.CREDENTIALS_DIRECTORY;
  if (dir === undefined || !dir.startsWith('/') || !pathIsNormalized(dir))
    throw new SettingsError(`Credential not available (no credentials passed at all): ${id}`, '--load-credential', v);
  return { id, path: pathJoin(dir, rest), socket: false };
}

/** path_join(a, b): one '/' between them */
function pathJoin(a: string, b: string): string {
  if (b === '') return a;
  return `${a.replace(/\/+$/, '')}/${b.replace(/^\/+/, '')}`;
}
