/** Mount specifications of --bind=, --tmpfs=, --overlay=, --inaccessible=, --pivot-root= and their keys (nspawn-mount.c). */
import { type Errno, type Result, errnoText, fail, isEmpty, ok } from './c-util.js';
import { EXTRACT_DONT_COALESCE_SEPARATORS, extractFirstWord, splitWords } from './extract-word.js';
import type { BindIdmapping, CustomMount } from './model.js';
import { makeAbsolute, pathIsAbsolute } from './paths.js';

/** source_path_parse(): "+/in/root" kept, relative paths made absolute against cwd. */
function sourcePathParse(p: string, cwd: string): Result<string> {
  if (p === '') return fail('EINVAL');
  if (p.startsWith('+')) return pathIsAbsolute(p.slice(1)) ? ok(p) : fail('EINVAL');
  return ok(makeAbsolute(p, cwd));
}

/** parse_mount_bind_options(): done by systemd at mount time; here at parse time. */
export function bindOptionsParse(options: string): { ok: true; recursive: boolean; idmapping?: BindIdmapping } | { ok: false; why: string } {
  const words = splitWords(options, ',', 0);
  if (!words.ok) return { ok: false, why: 'Failed to extract mount option: Invalid argument' };
  let recursive = true;
  let idmapping: BindIdmapping | undefined;
  for (const w of words.words) {
    if (w === 'rbind') recursive = true;
    else if (w === 'norbind') recursive = false;
    else if (w === 'idmap' || w === 'noidmap' || w === 'rootidmap' || w === 'owneridmap') idmapping = w;
    else return { ok: false, why: `Invalid bind mount option: ${w}` };
  }
  return idmapping === undefined ? { ok: true, recursive } : { ok: true, recursive, idmapping };
}

type BindMount = Extract<CustomMount, { type: 'bind' }>;

/** What 252's parse_mount_bind_options() says when it mounts M, for options it refuses; undefined when they are fine. */
export function bindMountOptionsError(m: CustomMount): string | undefined {
  if (m.type !== 'bind' || m.options === undefined) return undefined;
  const o = bindOptionsParse(m.options);
  return o.ok ? undefined : o.why;
}

/** bind_mount_parse(): "SRC[:DST[:OPTIONS]]", "\:" escapes a colon in SRC and DST. */
export function bindMountParse(s: string, readOnly: boolean, cwd: string): { ok: true; value: BindMount } | { ok: false; why: string } {
  const bad = (errno: Errno) => ({ ok: false as const, why: `Invalid bind mount specification: ${errnoText(errno)}` });
  const a = extractFirstWord(s, ':', EXTRACT_DONT_COALESCE_SEPARATORS);
  if (!a.ok) return bad(a.errno);
  if (a.word === null) return bad('EINVAL');
  const b = extractFirstWord(a.rest, ':', EXTRACT_DONT_COALESCE_SEPARATORS);
  if (!b.ok) return bad(b.errno);
  const source = a.word;
  const destination = b.word ?? (source.startsWith('+') ? source.slice(1) : source);
  const options = b.word !== null && !isEmpty(b.rest) ? b.rest! : undefined;
  let src = '';
  if (source !== '') {
    const r = sourcePathParse(source, cwd);
    if (!r.ok) return bad(r.errno);
    src = r.value;
  }
  if (!pathIsAbsolute(destination)) return bad('EINVAL');
  const m: BindMount = { type: 'bind', source: src, destination, readOnly, recursive: true };
  if (src.startsWith('+')) {
    m.source = src.slice(1);
    m.sourceInRoot = true;
  }
  if (options !== undefined) {
    m.options = options;
    // systemd-nspawn 252 reads the options only when it mounts (parse_mount_bind_options()): a bad one fails the
    // start there ("Invalid bind mount option: X"), not the command line or the .nspawn file (bindMountOptionsError())
    const o = bindOptionsParse(options);
    if (!o.ok) return { ok: true, value: m };
    m.recursive = o.recursive;
    if (o.idmapping !== undefined) {
      m.idmapping = o.idmapping;
      m.idmap = o.idmapping !== 'noidmap';
    }
  }
  return { ok: true, value: m };
}

/** tmpfs_mount_parse(): "PATH[:OPTIONS]", options default to "mode=0755". */
export function tmpfsMountParse(s: string): Result<Extract<CustomMount, { type: 'tmpfs' }>> {
  const a = extractFirstWord(s, ':', EXTRACT_DONT_COALESCE_SEPARATORS);
  if (!a.ok) return a;
  if (a.word === null || !pathIsAbsolute(a.word)) return fail('EINVAL');
  return ok({ type: 'tmpfs', destination: a.word, options: isEmpty(a.rest) ? 'mode=0755' : a.rest! });
}

/** inaccessible_mount_parse(): an absolute path, taken verbatim. */
export function inaccessibleMountParse(s: string): Result<Extract<CustomMount, { type: 'inaccessible' }>> {
  return pathIsAbsolute(s) ? ok({ type: 'inaccessible', destination: s }) : fail('EINVAL');
}

/** overlay_mount_parse(): "LOWER:UPPER" (destination = UPPER) or "LOWER...:UPPER:DEST" (UPPER may be empty). */
export function overlayMountParse(s: string, readOnly: boolean, cwd: string): Result<Extract<CustomMount, { type: 'overlay' }>> {
  const w = splitWords(s, ':', EXTRACT_DONT_COALESCE_SEPARATORS);
  if (!w.ok) return w;
  const parts = w.words;
  if (parts.length < 2) return fail('EADDRNOTAVAIL');
  if (parts.length === 2) {
    const lower = sourcePathParse(parts[0]!, cwd);
    if (!lower.ok) return lower;
    const upper = sourcePathParse(parts[1]!, cwd);
    if (!upper.ok) return upper;
    const destination = upper.value.startsWith('+') ? upper.value.slice(1) : upper.value;
    return ok({ type: 'overlay', lowers: [lower.value], upper: upper.value, destination, readOnly });
  }
  const destination = parts[parts.length - 1]!;
  const lowers: string[] = [];
  for (const l of parts.slice(0, -2)) {
    const r = sourcePathParse(l, cwd);
    if (!r.ok) return r;
    lowers.push(r.value);
  }
  const upperText = parts[parts.length - 2]!;
  let upper = '';
  if (upperText !== '') {
    const r = sourcePathParse(upperText, cwd);
    if (!r.ok) return r;
    upper = r.value;
  }
  if (!pathIsAbsolute(destination)) return fail('EINVAL');
  return ok({ type: 'overlay', lowers, upper, destination, readOnly });
}

/** pivot_root_parse(): "NEW[:OLD]", both absolute. */
export function pivotRootParse(s: string): Result<{ newRoot: string; oldRoot?: string }> {
  const a = extractFirstWord(s, ':', EXTRACT_DONT_COALESCE_SEPARATORS);
  if (!a.ok) return a;
  if (a.word === null) return fail('EINVAL');
  const oldRoot = isEmpty(a.rest) ? undefined : a.rest!;
  if (!pathIsAbsolute(a.word)) return fail('EINVAL');
  if (oldRoot !== undefined && !pathIsAbsolute(oldRoot)) return fail('EINVAL');
  return ok(oldRoot === undefined ? { newRoot: a.word } : { newRoot: a.word, oldRoot });
}
