/**
 * EphemeralRoot.removal(): the steps of remove() as data, for a program that removes the ephemeral root in this
 * process's place (nspawn's helper after a hand-over), for each mode on real file systems. Root only.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createEphemeral, createSubvolume, EPHEMERAL_MOUNT_SOURCE, removeEphemeralOrphan } from '../src/index.js';
import { fileSystemsForTests } from './fixture.js';

const fss = fileSystemsForTests();

/** the mount at exactly PATH: "TYPE SOURCE" */
const mountAt = (path: string) =>
  readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[4] === path)
    .map((f) => {
      const d = f.indexOf('-');
      return `${f[d + 1]} ${f[d + 2]}`;
    });

describe('EphemeralRoot.removal()', () => {
  it('an overlay: the overlay on root to unmount, then the directory to delete', () => {
    const tree = join(fss.ext4!.dir, 'ov-tree');
    mkdirSync(join(tree, 'usr'), { recursive: true });
    const e = createEphemeral(tree, { mode: 'overlay', env: {} });
    try {
      const r = e.removal();
      expect(r).toEqual({ mounts: [e.root], tree: e.snapshot, subvolume: false });
      expect(e.root).toBe(join(e.snapshot, 'root'));
      expect(mountAt(e.root)).toEqual([`overlay ${EPHEMERAL_MOUNT_SOURCE}`]);
    } finally {
      e.remove();
    }
  });

  it('an overlay of a mount point: the snapshot is a tmpfs inside it, unmounted after the overlay', () => {
    const tree = fss.ext4!.dir;
    const e = createEphemeral(tree, { mode: 'overlay', env: {} });
    try {
      expect(e.snapshot.startsWith(`${tree}/.#machine.`)).toBe(true);
      expect(e.removal()).toEqual({ mounts: [e.root, e.snapshot], tree: e.snapshot, subvolume: false });
      expect(mountAt(e.snapshot)).toEqual([`tmpfs ${EPHEMERAL_MOUNT_SOURCE}`]);
    } finally {
      e.remove();
    }
    expect(readdirSync(tree).filter((n) => n.startsWith('.#'))).toEqual([]);
  });

  it('a copy: the directory, a subvolume on btrfs; a snapshot: the subvolume', () => {
    for (const kind of ['ext4', 'btrfs'] as const) {
      const tree = join(fss[kind]!.dir, 'ov-copy');
      mkdirSync(tree, { recursive: true });
      writeFileSync(join(tree, 'f'), 'x');
      const e = createEphemeral(tree, { mode: 'copy', env: {} });
      try {
        expect(e.removal()).toEqual({ mounts: [], tree: e.snapshot, subvolume: kind === 'btrfs' });
      } finally {
        e.remove();
      }
    }
    const sub = join(fss.btrfs!.dir, 'ov-sub');
    createSubvolume(sub);
    const e = createEphemeral(sub, { env: {} });
    try {
      expect(e.mode).toBe('snapshot');
      expect(e.removal()).toEqual({ mounts: [], tree: e.snapshot, subvolume: true });
    } finally {
      e.remove();
    }
  });
});

describe('removeEphemeralOrphan() and EphemeralOptions.reserve (a snapshot whose run was killed)', () => {
  it('reserve() gets the path before anything of it exists; a held snapshot is busy; once its owner is gone it is removed, overlay and lock included', async () => {
    for (const kind of ['ext4', 'btrfs'] as const) {
      const parent = join(fss[kind]!.dir, `bt-orphan-${kind}`);
      const tree = join(parent, 'tree');
      if (kind === 'btrfs') {
        mkdirSync(parent);
        createSubvolume(tree);
      }
      mkdirSync(join(tree, 'usr'), { recursive: true });
      const seen: string[] = [];
      const e = createEphemeral(tree, { env: {}, reserve: (s) => seen.push(`${s} ${readdirSync(parent).length}`) });
      // reserved when only the tree was there: no snapshot, no lock file yet
      expect(seen).toEqual([`${e.snapshot} 1`]);
      expect(removeEphemeralOrphan(e.snapshot, {})).toBe('busy');
      expect(readdirSync(parent).length).toBe(3);
      // a process that dies holding one (kill -9): its lock goes with it, the rest stays
      const script = `import('${join(import.meta.dirname, '../dist/index.js')}').then((b) => { const x = b.createEphemeral(${JSON.stringify(tree)}, { env: {} }); console.log(x.snapshot); setInterval(() => {}, 1000); });`;
      const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      const orphan = await new Promise<string>((res) => child.stdout!.once('data', (d: Buffer) => res(d.toString().trim())));
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      expect(existsSync(orphan)).toBe(true);
      expect(removeEphemeralOrphan(orphan, {})).toBe('removed');
      expect(existsSync(orphan)).toBe(false);
      expect(mountAt(join(orphan, 'root'))).toEqual([]);
      e.remove();
      expect(readdirSync(parent)).toEqual(['tree']);
      expect(removeEphemeralOrphan(orphan, {})).toBe('removed'); // nothing left of it: nothing to do
      expect(() => removeEphemeralOrphan(tree, {})).toThrow(/not an ephemeral snapshot/);
      expect(readdirSync(parent)).toEqual(['tree']);
    }
  });
});
