/**
 * systemd's unit names (src/basic/unit-name.c): the escaping machined uses for `machine-NAME.scope`
 * (`unit_name_escape()`) and the mangling systemd-nspawn applies to `--slice=` and to the scope of
 * `--register=no` without `--keep-unit` (`unit_name_mangle_with_suffix()`).
 */

const LETTERS_DIGITS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const VALID_CHARS = `${LETTERS_DIGITS}:-_.\\`;
const VALID_CHARS_WITH_AT = `${VALID_CHARS}@`;
const UNIT_TYPES = ['service', 'mount', 'swap', 'socket', 'target', 'device', 'automount', 'timer', 'path', 'slice', 'scope'];
const UNIT_NAME_MAX = 255;

function escapeChar(c: string): string {
  // byte-wise, as C does it on UTF-8
  return [...Buffer.from(c, 'utf8')].map((b) => `\\x${b.toString(16).padStart(2, '0')}`).join('');
}

/** `unit_name_escape()`: `/` becomes `-`; `-`, `\` and anything outside `[A-Za-z0-9:_.]` become `\xNN`; a leading `.` too. */
export function unitNameEscape(s: string): string {
  let out = '';
  let first = true;
  for (const c of s) {
    if (first && c === '.') out += escapeChar(c);
    else if (c === '/') out += '-';
    else if (c === '-' || c === '\\' || !VALID_CHARS.includes(c)) out += escapeChar(c);
    else out += c;
    first = false;
  }
  return out;
}

/** The scope machined makes for a machine (`machine_start_scope()`): `machine-ESCAPED.scope`. */
export function machineScopeName(machineName: string): string {
  return `machine-${unitNameEscape(machineName)}.scope`;
}

/** `unit_name_to_type()` of a name: its suffix when it is a unit type. */
function unitType(name: string): string | undefined {
  const dot = name.lastIndexOf('.');
  if (dot <= 0) return undefined;
  const t = name.slice(dot + 1);
  return UNIT_TYPES.includes(t) ? t : undefined;
}

/** `unit_name_is_valid(name, UNIT_NAME_ANY)`: a prefix (with at most one `@instance`) and a unit type suffix. */
export function unitNameIsValid(name: string): boolean {
  if (!name || name.length > UNIT_NAME_MAX) return false;
  const t = unitType(name);
  if (!t) return false;
  const prefix = name.slice(0, -(t.length + 1));
  if (!prefix || [...prefix].some((c) => !VALID_CHARS_WITH_AT.includes(c))) return false;
  const at = prefix.indexOf('@');
  if (at === 0) return false;
  if (at > 0 && prefix.indexOf('@', at + 1) >= 0) return false;
  return true;
}

/**
 * `unit_name_mangle_with_suffix()` without globs: a valid unit name stays as it is; otherwise `/` becomes `-` and
 * characters a unit name cannot have become `\xNN`, and SUFFIX (`.slice`, `.scope`) is appended unless the result
 * already ends in a unit type. Throws on an empty name, as systemd fails with EINVAL.
 */
export function mangleUnitName(name: string, suffix: '.slice' | '.scope' | '.service'): string {
  if (!name) throw new Error('Invalid unit name: the name is empty');
  if (unitNameIsValid(name)) return name;
  let s = '';
  for (const c of name) s += c === '/' ? '-' : VALID_CHARS_WITH_AT.includes(c) ? c : escapeChar(c);
  return unitType(s) ? s : s + suffix;
}
