/** The mount table of this process's mount namespace, from /proc/self/mountinfo. */
import { readFileSync } from 'node:fs';

export interface MountEntry {
  id: number;
  parent: number;
  /** the mount point, unescaped */
  target: string;
  fsType: string;
  source: string;
  /** super options: overlay's lowerdir/upperdir among them */
  superOptions: string;
}

const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

export function parseMountInfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const f = line.split(' ');
    const sep = f.indexOf('-');
    if (sep < 0 || f.length < sep + 3) continue;
    out.push({
      id: Number(f[0]),
      parent: Number(f[1]),
      target: unescape(f[4]!),
      fsType: f[sep + 1]!,
      source: unescape(f[sep + 2]!),
      superOptions: f[sep + 3] ?? '',
    });
  }
  return out;
}

export function mountTable(): MountEntry[] {
  return parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8'));
}

/** Is PATH (canonical, absolute) a mount point? */
export function isMountPoint(path: string, table: MountEntry[] = mountTable()): boolean {
  return table.some((m) => m.target === path);
}

/** The mount points strictly below PATH (canonical, absolute). */
export function mountsUnder(path: string, table: MountEntry[] = mountTable()): MountEntry[] {
  const prefix = path === '/' ? '/' : `${path}/`;
  return table.filter((m) => m.target.startsWith(prefix) && m.target !== path);
}

/** The last mount on PATH, if it is a mount point. */
export function mountAt(path: string, table: MountEntry[] = mountTable()): MountEntry | undefined {
  return table.filter((m) => m.target === path).at(-1);
}
