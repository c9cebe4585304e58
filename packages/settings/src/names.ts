/**
 * The name rules of systemd v252, in one place for every package: host names (`hostname_is_valid()`,
 * src/basic/hostname-util.c), machine names (machined, machinectl and `-M` take a machine name only when it is a
 * valid host name) and image names (`image_name_is_valid()`, src/basic/os-util.c, over `filename_is_valid()` of
 * src/basic/path-util.c). Pure functions, no dependencies.
 */

/** HOST_NAME_MAX on Linux: a host name is at most 64 bytes. */
export const HOST_NAME_MAX = 64;
/** NAME_MAX on Linux: a file name is at most 255 bytes. */
export const NAME_MAX = 255;

export interface HostnameFlags {
  /** VALID_HOSTNAME_TRAILING_DOT: accept one trailing dot on a name of two labels or more */
  trailingDot?: boolean;
  /** VALID_HOSTNAME_DOT_HOST: accept ".host", the container logic's name for the host itself */
  dotHost?: boolean;
}

/** valid_ldh_char(): letters, digits, hyphens (RFC 5890, 2.3.1), ASCII only. */
function ldh(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x2d;
}

/**
 * hostname_is_valid(s, flags): labels of letters, digits and hyphens joined by single dots; no leading dot, no
 * hyphen at either end of a label, at most 64 bytes. No underscore, nothing outside ASCII.
 */
export function hostnameIsValid(s: string, flags: HostnameFlags = {}): boolean {
  if (s.length === 0) return false;
  if (s === '.host') return flags.dotHost === true;
  let dots = 0;
  let dot = true;
  let hyphen = true;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x2e) {
      if (dot || hyphen) return false;
      dot = true;
      hyphen = false;
      dots++;
    } else if (c === 0x2d) {
      if (dot) return false;
      dot = false;
      hyphen = true;
    } else {
      if (!ldh(c)) return false;
      dot = false;
      hyphen = false;
    }
  }
  if (dot && (dots < 2 || flags.trailingDot !== true)) return false;
  if (hyphen) return false;
  // every character is ASCII here: the length in bytes is the length
  return s.length <= HOST_NAME_MAX;
}

/**
 * A machine name, as machined registers one and machinectl and `nspawn -M` accept one: `hostname_is_valid(s, 0)`.
 * Lookups may also name the host as ".host" (`{ dotHost: true }`), never a registration.
 */
export function machineNameIsValid(s: string, flags: Pick<HostnameFlags, 'dotHost'> = {}): boolean {
  return hostnameIsValid(s, flags.dotHost ? { dotHost: true } : {});
}

/** The length of S in UTF-8 bytes, or -1 when S holds a lone surrogate (it has no UTF-8 form). */
function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (!(d >= 0xdc00 && d <= 0xdfff)) return -1;
      n += 4;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) return -1;
    else n += 3;
  }
  return n;
}

/** filename_is_valid(): not empty, not "." or "..", no "/", at most NAME_MAX bytes. */
export function filenameIsValid(s: string): boolean {
  if (s === '' || s === '.' || s === '..' || s.includes('/')) return false;
  return utf8Length(s) <= NAME_MAX;
}

/**
 * image_name_is_valid(): a valid file name (so never ".", ".." or anything with a "/"), no control characters
 * (NUL, 0x01-0x1f, 0x7f), valid UTF-8 (no lone surrogate), not a ".#" temporary. A name starting with "." is a
 * valid, hidden image.
 */
export function imageNameIsValid(s: string): boolean {
  if (!filenameIsValid(s)) return false;
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(s)) return false;
  if (utf8Length(s) < 0) return false;
  return !s.startsWith('.#');
}
