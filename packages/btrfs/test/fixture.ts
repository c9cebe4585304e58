/** Real file systems for the tests: a btrfs on a loop device over a sparse file, and an ext4 one; always torn down. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';

export interface Fs {
  dir: string;
  dispose(): void;
}

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

/** A fresh file system of TYPE ('btrfs' or 'ext4') mounted on a new directory under /var/tmp. */
export function makeFs(type: 'btrfs' | 'ext4', sizeMB = 400): Fs {
  const base = mkdtempSync(`/var/tmp/bt-${type}-`);
  const img = `${base}/fs.img`;
  const dir = `${base}/mnt`;
  sh('truncate', ['-s', `${sizeMB}M`, img]);
  if (type === 'btrfs') sh('mkfs.btrfs', ['-q', '-f', img]);
  else sh('mkfs.ext4', ['-q', '-F', img]);
  const loop = sh('losetup', ['--find', '--show', img]);
  let mounted = false;
  try {
    sh('mkdir', ['-p', dir]);
    sh('mount', [loop, dir]);
    mounted = true;
  } catch (e) {
    sh('losetup', ['-d', loop]);
    rmSync(base, { recursive: true, force: true });
    throw e;
  }
  return {
    dir,
    dispose() {
      if (mounted) {
        try {
          sh('umount', [dir]);
        } catch {
          sh('umount', ['-l', dir]);
        }
      }
      try {
        sh('losetup', ['-d', loop]);
      } catch {
        // autoclear
      }
      rmSync(base, { recursive: true, force: true });
    },
  };
}

export function run(cmd: string, args: string[]): string {
  return sh(cmd, args);
}
