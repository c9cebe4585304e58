/** Real file systems for the tests: a btrfs on a loop device over a sparse file, and an ext4 one; always torn down. */
import { execa, execaSync } from 'execa';
import { mkdtempSync, rmSync } from 'node:fs';
import { afterAll, beforeAll } from 'vitest';

export interface Fs {
  dir: string;
  dispose(): void;
}

function sh(cmd: string, args: string[]): string {
  return execaSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }).stdout.trim();
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

/**
 * What `kill -9` of a container manager leaves: a child process makes an ephemeral root of TREE and is killed; the
 * snapshot (and its overlay mount) stays, its lock is free. Returns the snapshot's path.
 */
export async function orphanEphemeral(tree: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  const { fileURLToPath } = await import('node:url');
  const src = fileURLToPath(new URL('../dist/index.js', import.meta.url));
  const code = `import { createEphemeral } from ${JSON.stringify(src)}; const e = createEphemeral(${JSON.stringify(tree)}); console.log('SNAP ' + e.snapshot); setInterval(() => {}, 1000);`;
  const child = execa(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'], env, buffer: false, reject: false });
  try {
    return await new Promise<string>((res, rej) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /SNAP (.*)\n/.exec(out);
        if (m) res(m[1]!);
      });
      void child.then(() => rej(new Error(`child died: ${out}`)));
    });
  } finally {
    child.kill('SIGKILL');
    await child;
  }
}

/**
 * An ext4 (EXT4_MB large) and a btrfs file system for the tests of one file: made before them, disposed after them
 * (also when they fail). Read the record inside the tests.
 */
export function fileSystemsForTests(ext4MB = 64): Record<string, Fs> {
  const fss: Record<string, Fs> = {};
  beforeAll(() => {
    fss.ext4 = makeFs('ext4', ext4MB);
    fss.btrfs = makeFs('btrfs');
  });
  afterAll(() => {
    for (const f of Object.values(fss)) f.dispose();
  });
  return fss;
}
