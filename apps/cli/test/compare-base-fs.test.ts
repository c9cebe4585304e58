/**
 * Trees without a merged /usr, side by side with systemd-nspawn 252: before it mounts anything its outer child runs
 * base_filesystem_create() on the tree (src/shared/base-filesystem.c), which makes the /bin, /lib, /sbin and /lib64
 * symlinks into /usr (where their target exists) and the top-level directories a tree lacks. Both tools run the same
 * command in fresh copies of the same tree; the top level of each tree afterwards (type, mode, link target) must match.
 *
 * Needs root and /usr/bin/systemd-nspawn; it fails, never skips, without them.
 */
import { chmodSync, copyFileSync, lstatSync, mkdirSync, readdirSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, requireRootAndSystemdNspawn, runTool, TOOLS } from './helpers/containers.js';

/** A tree whose programs all live in /usr: busybox at /usr/bin, os-release at /usr/lib, no /bin, /lib, /sbin, /root... */
function usrOnlyTree(dir: string, loader: 'both' | 'multiarch-only' | 'none', extra?: (dir: string) => void): void {
  for (const d of ['usr/bin', 'usr/sbin', 'usr/lib', 'etc']) mkdirSync(join(dir, d), { recursive: true, mode: 0o755 });
  copyFileSync('/bin/busybox', join(dir, 'usr/bin/busybox'));
  chmodSync(join(dir, 'usr/bin/busybox'), 0o755);
  symlinkSync('busybox', join(dir, 'usr/bin/sh'));
  symlinkSync('busybox', join(dir, 'usr/bin/true'));
  writeFileSync(join(dir, 'usr/lib/os-release'), 'ID=busybox\nNAME=BusyBox\n');
  writeFileSync(join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(join(dir, 'etc/group'), 'root:x:0:\n');
  if (loader === 'both') {
    mkdirSync(join(dir, 'usr/lib/x86_64-linux-gnu'), { mode: 0o755 });
    writeFileSync(join(dir, 'usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2'), '');
    // a Fedora-style directory too: 252.31+ (Debian's 252.39) links /lib64 only to usr/lib64
    mkdirSync(join(dir, 'usr/lib64'), { mode: 0o755 });
    writeFileSync(join(dir, 'usr/lib64/ld-linux-x86-64.so.2'), '');
  } else if (loader === 'multiarch-only') {
    // only the multiarch directory has the loader: 252.31+ makes no /lib64
    mkdirSync(join(dir, 'usr/lib/x86_64-linux-gnu'), { mode: 0o755 });
    writeFileSync(join(dir, 'usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2'), '');
    mkdirSync(join(dir, 'usr/lib64'), { mode: 0o755 });
  }
  extra?.(dir);
}

/** The tree's top level: NAME TYPE MODE [-> TARGET], sorted. */
function topLevel(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .map((n) => {
      const st = lstatSync(join(dir, n));
      if (st.isSymbolicLink()) return `${n} symlink -> ${readlinkSync(join(dir, n))}`;
      return `${n} ${st.isDirectory() ? 'dir' : 'file'} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
    });
}

interface Case {
  name: string;
  loader: 'both' | 'multiarch-only' | 'none';
  extra?: (dir: string) => void;
  args?: string[];
  command: string[];
}

const CASES: Case[] = [
  { name: 'multiarch and Fedora-style loaders: /lib64 -> usr/lib64 only (252.31+)', loader: 'both', command: ['/usr/bin/true'] },
  { name: 'the loader only in usr/lib/x86_64-linux-gnu: no /lib64', loader: 'multiarch-only', command: ['/usr/bin/true'] },
  { name: 'no loader anywhere: no /lib64', loader: 'none', command: ['/usr/bin/true'] },
  {
    name: 'what exists stays: a /bin directory, a dangling /sbin symlink, /root 0700',
    loader: 'both',
    extra: (dir) => {
      mkdirSync(join(dir, 'bin'), { mode: 0o711 });
      chmodSync(join(dir, 'bin'), 0o711);
      symlinkSync('/nowhere', join(dir, 'sbin'));
      mkdirSync(join(dir, 'root'), { mode: 0o700 });
      chmodSync(join(dir, 'root'), 0o700);
    },
    command: ['/usr/bin/true'],
  },
  { name: 'the command resolves through the new /bin symlink', loader: 'none', command: ['/bin/sh', '-c', 'test -x /bin/busybox && readlink /bin'] },
];

let tmp: { dir: string; remove: () => string[] };
beforeAll(() => {
  requireRootAndSystemdNspawn();
  tmp = makeTempDir('nt-basefs-');
});
afterAll(() => {
  expect(tmp.remove()).toEqual([]);
});

describe('trees without a merged /usr, as systemd-nspawn 252 (base_filesystem_create)', () => {
  it('the test can fail: an unmerged tree lacks the links before a run', () => {
    const dir = join(tmp.dir, 'before', 'tree');
    mkdirSync(dir, { recursive: true });
    usrOnlyTree(dir, 'both');
    expect(topLevel(dir)).toEqual(['etc dir 755 0:0', 'usr dir 755 0:0']);
  });

  for (const c of CASES) {
    it(c.name, () => {
      const seen: Record<string, { status: number | null; stdout: string; top: string[] }> = {};
      for (const tool of TOOLS) {
        const run = join(tmp.dir, c.name.replace(/[^a-z0-9]+/gi, '-'), tool);
        const dir = join(run, 'tree');
        mkdirSync(dir, { recursive: true });
        usrOnlyTree(dir, c.loader, c.extra);
        const r = runTool(tool, ['-q', '-D', dir, ...(c.args ?? []), ...c.command]);
        seen[tool] = { status: r.status, stdout: r.stdout, top: topLevel(dir) };
        if (r.status !== 0) seen[tool].stdout += `\n[stderr] ${r.stderr}`;
      }
      expect(seen['systemd-nspawn'].status, seen['systemd-nspawn'].stdout).toBe(0);
      expect(seen.nspawn).toEqual(seen['systemd-nspawn']);
      // the links are really there (not just equally missing)
      expect(seen.nspawn.top).toContain('usr dir 755 0:0');
      expect(seen.nspawn.top.some((l) => l.startsWith('lib symlink -> usr/lib'))).toBe(true);
    });
  }
});
