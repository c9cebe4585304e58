/**
 * Reading the probe's output (test/fixtures/probe.sh) and comparing two of them: sections, normalization of what
 * legitimately changes from run to run, mountinfo as a multiset of (mount point, type, flags, super options),
 * and line-level differences per section.
 */
import { lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';

export type Sections = Map<string, string[]>;

/** Splits probe output into its "=== name" sections (CRs of a pty console are dropped). */
export function parseProbeOutput(out: string): Sections {
  const sections: Sections = new Map();
  let cur: string[] | undefined;
  for (const raw of out.split('\n')) {
    const line = raw.replace(/\r+$/, '');
    const m = /^=== (.+)$/.exec(line);
    if (m) {
      cur = [];
      sections.set(m[1]!, cur);
    } else if (cur && line !== '') cur.push(line);
  }
  return sections;
}

export interface MountEntry {
  id: number;
  parent: number;
  dev: string;
  root: string;
  mountPoint: string;
  mountOptions: string;
  optional: string[];
  fsType: string;
  source: string;
  superOptions: string;
}

/** Parses /proc/PID/mountinfo lines. */
export function parseMountinfo(lines: string[]): MountEntry[] {
  const out: MountEntry[] = [];
  for (const l of lines) {
    const f = l.split(' ');
    const sep = f.indexOf('-', 6);
    if (sep < 0 || f.length < sep + 4) throw new Error(`bad mountinfo line: ${l}`);
    out.push({
      id: Number(f[0]),
      parent: Number(f[1]),
      dev: f[2]!,
      root: f[3]!,
      mountPoint: f[4]!,
      mountOptions: f[5]!,
      optional: f.slice(6, sep),
      fsType: f[sep + 1]!,
      source: f[sep + 2]!,
      superOptions: f[sep + 3]!,
    });
  }
  return out;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** A random UUID becomes its class: random ones must still look like what systemd makes (v4). KEEP stay as they are. */
export function uuidClass(s: string, keep: readonly string[] = []): string {
  if (keep.includes(s)) return s;
  if (UUID_V4.test(s)) return '<uuid-v4>';
  if (UUID.test(s)) return '<uuid-not-v4>';
  return s;
}

const MONTH = '(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)';
const LS_TIME = new RegExp(`\\s${MONTH}\\s+\\d+\\s+(?:\\d\\d:\\d\\d|\\d{4})\\s`);

/**
 * `ls -la` output of several directories ("DIR:" headers) as one line per entry, keyed by its directory, with
 * the timestamp and the "total" lines dropped and blanks collapsed.
 */
export function normalizeLs(lines: string[]): string[] {
  const out: string[] = [];
  let dir = '';
  for (const l of lines) {
    const h = /^(\/.*):( missing)?$/.exec(l);
    if (h) {
      dir = h[1]!;
      if (h[2]) out.push(`${dir}: missing`);
      continue;
    }
    if (/^total \d+$/.test(l)) continue;
    // anything that is neither an entry nor an error of ls is not part of a listing
    if (!/^[-dlcbps?][-rwxsStT]{9}[.+@]?\s/.test(l) && !l.startsWith('ls: ')) {
      dir = '';
      out.push(l);
      continue;
    }
    out.push(`${dir}: ${l.replace(LS_TIME, ' <time> ').replace(/\s+/g, ' ').trim()}`);
  }
  return out;
}

export interface NormalizeContext {
  /** the temp dir of this run: it becomes <RUN> */
  runDir: string;
  /** UUIDs that are not random in this setup (e.g. from the tree's /etc/machine-id): compared as they are */
  keepIds?: readonly string[];
}

function replaceAll(s: string, from: string, to: string): string {
  return from === '' ? s : s.split(from).join(to);
}

/** The systemd-nspawn/nspawn helpers' temporary names: ".#proc-kmsg0123456789abcdef" and friends. */
function normalizeRandomNames(s: string): string {
  return s.replace(/(\.#[A-Za-z0-9._-]*?)[0-9a-f]{16}\b/g, '$1<hex16>');
}

/** A mount as one comparable line: mount point, type, per-mount flags, super options, root in the fs, source. */
export function mountLine(m: MountEntry): string {
  return normalizeRandomNames(`${m.mountPoint} ${m.fsType} ${m.mountOptions} ${m.superOptions} root=${m.root} src=${m.source}`);
}

/** Propagation of a mount, without the peer group numbers. */
export function mountPropagation(m: MountEntry): string {
  const kinds = m.optional.map((o) => o.replace(/:\d+$/, '')).filter((o) => o !== '');
  return `${m.mountPoint} ${kinds.length ? kinds.join(',') : 'private'}`;
}

/**
 * Normalizes a probe's sections so that two runs of the same setup compare equal: the run's temp dir, mount IDs and
 * device numbers, peer group numbers, random IDs (checked for their form), timestamps and pipe inode numbers go.
 * mountinfo becomes a sorted list of mountLine()s plus a "mount-propagation" section.
 */
export function normalizeSections(raw: Sections, ctx: NormalizeContext): Sections {
  const out: Sections = new Map();
  const env = raw.get('env') ?? [];
  const containerUuid = env.find((l) => l.startsWith('container_uuid='))?.slice('container_uuid='.length);
  for (const [name, lines0] of raw) {
    let lines = lines0.map((l) => replaceAll(l, ctx.runDir, '<RUN>'));
    switch (name) {
      case 'env':
        lines = lines.map((l) => (l.startsWith('container_uuid=') ? `container_uuid=${uuidClass(l.slice(15), ctx.keepIds)}` : l));
        break;
      case 'mountinfo': {
        const mounts = parseMountinfo(lines);
        out.set('mount-propagation', mounts.map(mountPropagation).sort());
        lines = mounts.map(mountLine).sort();
        break;
      }
      case 'dev':
      case 'tree':
      case 'custom-mounts':
        // /proc's link count follows the number of processes on the host
        lines = normalizeLs(lines)
          .map(normalizeRandomNames)
          .map((l) => l.replace(/^\/: (\S+) \d+ (.* proc)$/, '/: $1 <nlink> $2'));
        break;
      case 'proc':
        lines = lines.map((l) => (l.startsWith('boot_id=') ? `boot_id=${uuidClass(l.slice(8), ctx.keepIds)}` : l));
        break;
      case 'run-host':
        lines = lines.map((l) => {
          if (!l.startsWith('container-uuid=')) return l;
          const v = l.slice('container-uuid='.length);
          return `container-uuid=${v === containerUuid ? '<same as $container_uuid>' : uuidClass(v, ctx.keepIds)}`;
        });
        break;
      case 'fds':
        lines = lines.map((l) => l.replace(/(pipe|socket|anon_inode):\[\d+\]/, '$1:[N]'));
        break;
    }
    out.set(name, lines);
  }
  return out;
}

export interface SectionDiff {
  section: string;
  /** lines only the first view has (with multiplicity) */
  onlyA: string[];
  /** lines only the second view has */
  onlyB: string[];
}

/** Multiset difference per section (sections missing on one side count as empty). */
export function diffSections(a: Sections, b: Sections): SectionDiff[] {
  const out: SectionDiff[] = [];
  const names = [...new Set([...a.keys(), ...b.keys()])];
  for (const section of names) {
    const count = new Map<string, number>();
    for (const l of a.get(section) ?? []) count.set(l, (count.get(l) ?? 0) + 1);
    for (const l of b.get(section) ?? []) count.set(l, (count.get(l) ?? 0) - 1);
    const onlyA: string[] = [];
    const onlyB: string[] = [];
    for (const [l, n] of count) {
      for (let i = 0; i < n; i++) onlyA.push(l);
      for (let i = 0; i < -n; i++) onlyB.push(l);
    }
    if (!a.has(section)) onlyB.unshift('(section missing on the other side)');
    if (!b.has(section)) onlyA.unshift('(section missing on the other side)');
    if (onlyA.length || onlyB.length) out.push({ section, onlyA: onlyA.sort(), onlyB: onlyB.sort() });
  }
  return out;
}

/** A readable diff: "- " lines only the first tool shows, "+ " lines only the second shows. */
export function formatDiffs(diffs: SectionDiff[], labelA: string, labelB: string): string {
  if (diffs.length === 0) return '';
  const parts = [`--- ${labelA}`, `+++ ${labelB}`];
  for (const d of diffs) {
    parts.push(`@@ ${d.section}`);
    for (const l of d.onlyA) parts.push(`- ${l}`);
    for (const l of d.onlyB) parts.push(`+ ${l}`);
  }
  return parts.join('\n');
}

/**
 * The file-system side effects a run left in DIR (a tree or host dirs): one line per entry with its type, mode,
 * owner and size (not times), random name parts normalized. SKIP lists relative paths whose children are left out.
 */
export function snapshotDir(dir: string, skip: readonly string[] = []): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    let names: string[];
    try {
      names = readdirSync(join(dir, rel)).sort();
    } catch (e) {
      out.push(`${rel || '.'}/ unreadable: ${(e as NodeJS.ErrnoException).code}`);
      return;
    }
    for (const n of names) {
      const r = rel ? `${rel}/${n}` : n;
      const st = lstatSync(join(dir, r));
      const type = st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : st.isFile() ? 'f' : st.isFIFO() ? 'p' : st.isSocket() ? 's' : st.isCharacterDevice() ? 'c' : 'b';
      const mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
      let line = `${normalizeRandomNames(r)} ${type} ${mode} ${st.uid}:${st.gid}`;
      if (type === 'f') line += ` size=${st.size}`;
      if (type === 'l') line += ` -> ${readlinkSync(join(dir, r))}`;
      out.push(line);
      if (type === 'd' && !skip.includes(r)) walk(r);
    }
  };
  walk('');
  return out;
}
