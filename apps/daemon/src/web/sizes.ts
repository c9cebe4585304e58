/**
 * The disk usage of a directory image, for the Images page where the store has none (a plain directory, or a
 * subvolume without quota: machinectl shows "-" there). Like `du -s --one-file-system`: blocks of everything under
 * it, symlinks not followed, other file systems not entered, hard links counted once. Walked asynchronously, one
 * image at a time, at most MAX_ENTRIES entries (then the figure is a lower bound), cached for CACHE_MS.
 */
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

export const MAX_ENTRIES = 1_000_000;
export const CACHE_MS = 5 * 60 * 1000;

export interface DirSize {
  bytes: number;
  /** the walk stopped at MAX_ENTRIES: at least this much */
  partial: boolean;
}

export async function directorySize(root: string, max = MAX_ENTRIES): Promise<DirSize> {
  const top = await lstat(root);
  const seen = new Set<string>();
  let bytes = top.blocks * 512;
  let entries = 0;
  const stack = [root];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      continue;
    }
    for (const n of names) {
      if (++entries > max) return { bytes, partial: true };
      const p = join(dir, n);
      let st;
      try {
        st = await lstat(p);
      } catch {
        continue;
      }
      if (st.dev !== top.dev) continue;
      if (st.nlink > 1 && !st.isDirectory()) {
        const id = `${st.ino}`;
        if (seen.has(id)) continue;
        seen.add(id);
      }
      bytes += st.blocks * 512;
      if (st.isDirectory()) stack.push(p);
    }
  }
  return { bytes, partial: false };
}

export class DirectorySizes {
  private readonly cache = new Map<string, { size: DirSize; at: number }>();
  private readonly queue: string[] = [];
  private walking = false;

  constructor(private readonly now: () => number = Date.now) {}

  /** The size of PATH when known (a walk is started when it is not, or is old); undefined meanwhile. */
  get(path: string): DirSize | undefined {
    const c = this.cache.get(path);
    if (!c || this.now() - c.at > CACHE_MS) this.enqueue(path);
    return c?.size;
  }

  private enqueue(path: string): void {
    if (this.queue.includes(path)) return;
    this.queue.push(path);
    if (!this.walking) void this.run();
  }

  private async run(): Promise<void> {
    this.walking = true;
    try {
      while (this.queue.length > 0) {
        const p = this.queue[0]!;
        try {
          this.cache.set(p, { size: await directorySize(p), at: this.now() });
        } catch {
          this.cache.delete(p);
        }
        this.queue.shift();
      }
    } finally {
      this.walking = false;
    }
  }

  /** Forgets images that are gone (KEEP: the paths listed now). */
  retain(keep: ReadonlySet<string>): void {
    for (const p of this.cache.keys()) if (!keep.has(p)) this.cache.delete(p);
  }
}
