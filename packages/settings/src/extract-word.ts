/**
 * extract_first_word() from systemd's src/basic/extract-word.c, on JS strings. Unit-file values are split with it
 * using different flags per key, which decides what quotes and backslashes mean. (EXTRACT_CUNESCAPE, C escape
 * sequences, is not used by any .nspawn key and is not implemented.)
 */
import { type Errno, WHITESPACE } from './c-util.js';

export const EXTRACT_RELAX = 1 << 0;
export const EXTRACT_UNESCAPE_RELAX = 1 << 2;
export const EXTRACT_UNESCAPE_SEPARATORS = 1 << 3;
export const EXTRACT_KEEP_QUOTE = 1 << 4;
export const EXTRACT_UNQUOTE = 1 << 5;
export const EXTRACT_DONT_COALESCE_SEPARATORS = 1 << 6;
export const EXTRACT_RETAIN_ESCAPE = 1 << 7;
export const EXTRACT_RETAIN_SEPARATORS = 1 << 8;

/**
 * One step of extraction. `rest` is what systemd's `*p` points to afterwards: the unparsed remainder, or null
 * once the input is used up (C: *p = NULL).
 */
export type ExtractResult =
  | { ok: true; word: string; rest: string | null }
  | { ok: true; word: null; rest: null }
  | { ok: false; errno: Errno };

const NUL = '\0';

/** extract_first_word(&p, &word, separators, flags) */
export function extractFirstWord(input: string | null, separators: string = WHITESPACE, flags = 0): ExtractResult {
  if (input === null) return { ok: true, word: null, rest: null };
  const at = (i: number): string => (i < input.length ? input[i]! : NUL);
  const isSep = (c: string): boolean => c !== NUL && separators.includes(c);
  const dontCoalesce = (flags & EXTRACT_DONT_COALESCE_SEPARATORS) !== 0;
  const retainSeps = (flags & EXTRACT_RETAIN_SEPARATORS) !== 0;
  const retainEscape = (flags & EXTRACT_RETAIN_ESCAPE) !== 0;
  const quoting = (flags & (EXTRACT_KEEP_QUOTE | EXTRACT_UNQUOTE)) !== 0;
  const unquote = (flags & EXTRACT_UNQUOTE) !== 0;

  let pos = 0;
  let s: string | null = dontCoalesce ? '' : null;
  const terminate = (): ExtractResult => (s === null ? { ok: true, word: null, rest: null } : { ok: true, word: s, rest: null });
  const next = (): ExtractResult => ({ ok: true, word: s ?? '', rest: input.slice(pos) });

  // Skip leading separators.
  for (;; pos++) {
    const c = at(pos);
    if (c === NUL) return terminate();
    if (isSep(c)) {
      if (dontCoalesce) {
        if (!retainSeps) pos++;
        return next();
      }
    } else {
      s ??= '';
      break;
    }
  }

  let quote = '';
  let backslash = false;
  for (;; pos++) {
    let c = at(pos);
    if (backslash) {
      if (c === NUL) {
        if (flags & EXTRACT_UNESCAPE_RELAX && (quote === '' || flags & EXTRACT_RELAX)) {
          s += '\\';
          return terminate();
        }
        if (flags & EXTRACT_RELAX) return terminate();
        return { ok: false, errno: 'EINVAL' };
      }
      if (flags & EXTRACT_UNESCAPE_SEPARATORS) {
        if (separators.includes(c) || c === '\\') s += c;
        else if (flags & EXTRACT_UNESCAPE_RELAX) s += '\\' + c;
        else return { ok: false, errno: 'EINVAL' };
      } else s += c;
      backslash = false;
    } else if (quote !== '') {
      for (;; pos++, c = at(pos)) {
        if (c === NUL) {
          if (flags & EXTRACT_RELAX) return terminate();
          return { ok: false, errno: 'EINVAL' };
        } else if (c === quote) {
          quote = '';
          if (unquote) break;
        } else if (c === '\\' && !retainEscape) {
          backslash = true;
          break;
        }
        s += c;
        if (quote === '') break;
      }
    } else {
      for (;; pos++, c = at(pos)) {
        if (c === NUL) return terminate();
        if ((c === "'" || c === '"') && quoting) {
          quote = c;
          if (unquote) break;
        } else if (c === '\\' && !retainEscape) {
          backslash = true;
          break;
        } else if (isSep(c)) {
          if (dontCoalesce) {
            if (!retainSeps) pos++;
            return next();
          }
          if (!retainSeps)
            for (;; pos++) {
              if (at(pos) === NUL) return terminate();
              if (!isSep(at(pos))) break;
            }
          return next();
        }
        s += c;
        if (quote !== '') break;
      }
    }
  }
}

/** strv_split_full(): all words, or the first error. */
export function splitWords(input: string, separators: string = WHITESPACE, flags = 0): { ok: true; words: string[] } | { ok: false; errno: Errno } {
  const words: string[] = [];
  let p: string | null = input;
  for (;;) {
    const r = extractFirstWord(p, separators, flags);
    if (!r.ok) return r;
    if (r.word === null) return { ok: true, words };
    words.push(r.word);
    p = r.rest;
  }
}
