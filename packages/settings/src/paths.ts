/** Paths as systemd's path-util.c checks and simplifies them. */
import { utf8Length } from './c-util.js';

const NAME_MAX = 255;
const PATH_MAX = 4096;

export const pathIsAbsolute = (p: string): boolean => p.startsWith('/');

/** path_simplify(): drops empty and "." components and leading ".." of absolute paths; "" stays "". */
export function pathSimplify(path: string): string {
  if (path === '') return path;
  const absolute = pathIsAbsolute(path);
  const out: string[] = [];
  for (const c of path.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..' && absolute && out.length === 0) continue;
    out.push(c);
  }
  const s = (absolute ? '/' : '') + out.join('/');
  return s === '' ? '.' : s;
}

/** path_is_valid_full(p, accept_dot_dot) */
export function pathIsValid(p: string, acceptDotDot = true): boolean {
  if (p === '') return false;
  if (utf8Length(p) >= PATH_MAX) return false;
  for (const c of p.split('/')) {
    if (utf8Length(c) > NAME_MAX) return false;
    if (!acceptDotDot && c === '..') return false;
  }
  return true;
}

/** path_is_normalized() */
export function pathIsNormalized(p: string): boolean {
  if (!pathIsValid(p, false)) return false;
  if (p === '.' || p.startsWith('./') || p.endsWith('/.') || p.includes('/./')) return false;
  return !p.includes('//');
}

/** path_simplify_and_warn(PATH_CHECK_ABSOLUTE): the simplified path, or why not. */
export function checkAbsolutePath(p: string): { ok: true; value: string } | { ok: false; why: string } {
  if (!pathIsAbsolute(p)) return { ok: false, why: 'Path is not absolute, ignoring.' };
  const s = pathSimplify(p);
  if (!pathIsValid(s)) return { ok: false, why: `Path has invalid length (${utf8Length(s)} bytes), ignoring.` };
  if (!pathIsNormalized(s)) return { ok: false, why: `Path is not normalized, ignoring: ${s}` };
  return { ok: true, value: s };
}

/** path_make_absolute_cwd() */
export function makeAbsolute(p: string, cwd: string): string {
  if (pathIsAbsolute(p)) return p;
  return cwd.endsWith('/') ? cwd + p : `${cwd}/${p}`;
}
