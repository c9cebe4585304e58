/**
 * What `--slice=` and `--property=` give a machine's cgroup on a host without systemd (the assembly turns them into
 * this, with systemd's grammar, through @nspawn/machined): the slice the scope goes in instead of machine.slice, as
 * systemd lays slices out (`foo-bar.slice` is `foo.slice/foo-bar.slice`), and the cgroup files the properties set,
 * for the unified hierarchy and for the v1 controllers, as systemd's cgroup_context_apply() writes them. The engine
 * writes the unified ones where the unified scope has the controller, else the v1 ones (cgroup.ts).
 */

/** One cgroup file write: the controller it belongs to, the file in the scope's directory, the value. */
export interface CgroupWrite {
  controller: string;
  file: string;
  value: string;
}

/** What one property (or a group of them, such as CPUQuota= with CPUQuotaPeriodSec=) sets. */
export interface CgroupAttribute {
  /** the property, for messages ("MemoryHigh=") */
  name: string;
  /** the writes on the unified hierarchy (controllers enabled there); empty: nothing to do there */
  unified: CgroupWrite[];
  /** the writes on the v1 hierarchies of their controllers; empty: nothing to do there */
  legacy: CgroupWrite[];
}

/** A slice of the machine's scope: its unit name and cgroup path below a hierarchy's root ("foo.slice/foo-bar.slice"). */
export interface CgroupSlice {
  unit: string;
  path: string;
}

/** The path's components, each a slice, checked (relative, no dot-dot, each "NAME.slice"): the directories to make. */
export function slicePathLevels(path: string): string[] {
  if (path === '') return [];
  const parts = path.split('/');
  for (const p of parts)
    if (p === '' || p === '.' || p === '..' || !p.endsWith('.slice') || p.includes('\0'))
      throw new Error(`not a slice path: ${JSON.stringify(path)}`);
  return parts.map((_, i) => parts.slice(0, i + 1).join('/'));
}

/**
 * Which writes of ATTRS go where: the unified ones when the unified scope has each of their controllers (AVAILABLE),
 * else the v1 ones when the host has a v1 hierarchy for each of theirs (V1); what can go neither way is reported.
 */
export function placeCgroupWrites(
  attrs: readonly CgroupAttribute[],
  unifiedControllers: ReadonlySet<string>,
  v1Controllers: ReadonlySet<string>,
): { unified: CgroupWrite[]; legacy: CgroupWrite[]; unplaced: string[] } {
  const out = { unified: [] as CgroupWrite[], legacy: [] as CgroupWrite[], unplaced: [] as string[] };
  for (const a of attrs) {
    if (a.unified.length > 0 && a.unified.every((w) => unifiedControllers.has(w.controller))) out.unified.push(...a.unified);
    else if (a.legacy.length > 0 && a.legacy.every((w) => v1Controllers.has(w.controller))) out.legacy.push(...a.legacy);
    else out.unplaced.push(a.name);
  }
  return out;
}

/**
 * --property='s cgroup files (cgroup_context_apply()): in the unified scope UNIFIED where it has the controllers, else
 * in the scope's v1 directories (V1: controller to directory); a failed write is a warning, as systemd's
 * set_attribute_and_warn() makes it, and so is a property whose controller the host lacks.
 */
export function applyCgroupAttributes(
  fs: { read(path: string): string; write(path: string, ...data: string[]): void },
  unified: string | undefined,
  v1: ReadonlyMap<string, string>,
  attrs: readonly CgroupAttribute[],
  warn: (message: string) => void,
): void {
  let available = new Set<string>();
  try {
    if (unified !== undefined) available = new Set(fs.read(`${unified}/cgroup.controllers`).split(/\s+/).filter((c) => c !== ''));
  } catch {
    // no controllers there
  }
  const placed = placeCgroupWrites(attrs, available, new Set(v1.keys()));
  const write = (dir: string, w: CgroupWrite) => {
    try {
      fs.write(`${dir}/${w.file}`, w.value);
    } catch (e) {
      warn(`Failed to set '${w.file}' attribute on '${dir}' to '${w.value.trim()}': ${(e as Error).message}`);
    }
  };
  for (const w of placed.unified) write(unified!, w);
  for (const w of placed.legacy) write(v1.get(w.controller)!, w);
  for (const n of placed.unplaced) warn(`${n}= has no effect: the cgroup controller it needs is not available on this host.`);
}
