/**
 * The canary and the store of the hostile-archive tests: a directory outside the image (a file, a directory, a
 * set of owners and times) whose every inode, mode, owner, content and mtime is recorded, and compared after each
 * attempt, with no entry added; and a store whose listing must show no half image.
 */
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { listImages } from '@nspawn/btrfs';

export interface Fixture {
  base: string;
  /** outside any image: must never change */
  outside: string;
  /** a host file, a target of symlinks and hard links */
  victim: string;
  store: string;
  /** archives and scratch: not part of the snapshot */
  work: string;
  snapshot(): string;
}

export function makeFixture(prefix = '/tmp/nspawn-test-im-'): Fixture {
  const base = mkdtempSync(prefix);
  const outside = join(base, 'outside');
  mkdirSync(join(outside, 'dir'), { recursive: true });
  const victim = join(outside, 'victim');
  writeFileSync(victim, 'host file\n');
  chmodSync(victim, 0o640);
  chownSync(victim, 4242, 4343);
  writeFileSync(join(outside, 'dir/inner'), 'inner\n');
  chmodSync(join(outside, 'dir'), 0o750);
  for (const p of [victim, join(outside, 'dir/inner'), join(outside, 'dir'), outside]) utimesSync(p, 1000000000, 1000000000);
  const store = join(base, 'store');
  mkdirSync(store, { mode: 0o700 });
  const work = join(base, 'work');
  mkdirSync(work);
  /** every entry of BASE except the store's inside, with inode, mode, owner, size, content hash, mtime */
  const snapshot = () => {
    const lines: string[] = [];
    const walk = (p: string, rel: string) => {
      const st = lstatSync(p, { bigint: true });
      const what = st.isFile() ? createHash('sha256').update(readFileSync(p)).digest('hex') : st.isSymbolicLink() ? readlinkSync(p) : '';
      const mine = p === store || p === work;
      lines.push(`${rel} ino=${st.ino} mode=${st.mode.toString(8)} owner=${st.uid}:${st.gid} nlink=${mine ? '-' : st.nlink} size=${st.isDirectory() ? '-' : st.size} mtime=${p === base || p === store || p === work ? '-' : st.mtimeNs} ${what}`);
      if (st.isDirectory() && p !== store && p !== work) for (const n of readdirSync(p).sort()) walk(join(p, n), `${rel}/${n}`);
    };
    walk(base, '.');
    return lines.join('\n');
  };
  return { base, outside, victim, store, work, snapshot };
}

/** the store's listing, hidden entries included: no half image may be there */
export function storeListing(store: string): string[] {
  return [...listImages({ root: store, hidden: true }).map((i) => i.name), ...readdirSync(store).filter((n) => n.startsWith('.'))].sort();
}
