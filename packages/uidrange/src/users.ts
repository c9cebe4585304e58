/** The user database check of uid_shift_pick(): is a UID or GID known to the host? (files: /etc/passwd, /etc/group) */
import { readFileSync } from 'node:fs';

export interface UserDb {
  hasUid(uid: number): boolean;
  hasGid(gid: number): boolean;
  /** every UID and GID known */
  ids(): Iterable<number>;
}

/** the IDs (third field) of a passwd- or group-format file; a missing file has none */
export function parseIdFile(text: string): Set<number> {
  const ids = new Set<number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#') || line.startsWith('+') || line.startsWith('-')) continue;
    const f = line.split(':');
    if (f.length < 3 || !/^[0-9]+$/.test(f[2]!)) continue;
    ids.add(Number(f[2]));
  }
  return ids;
}

function readIds(path: string): Set<number> {
  try {
    return parseIdFile(readFileSync(path, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Set();
    throw err;
  }
}

/** the host's files database, read on first use */
export function filesUserDb(passwd = '/etc/passwd', group = '/etc/group'): UserDb {
  let u: Set<number> | undefined;
  let g: Set<number> | undefined;
  return {
    hasUid: (uid) => (u ??= readIds(passwd)).has(uid),
    hasGid: (gid) => (g ??= readIds(group)).has(gid),
    ids: () => new Set([...(u ??= readIds(passwd)), ...(g ??= readIds(group))]),
  };
}
