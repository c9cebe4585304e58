// Real disk images for the root tests: sfdisk writes the table, each file system is made in a file of its own
// (mkfs.ext4 -d, mkfs.btrfs --rootdir, mksquashfs, mkfs.erofs, mkfs.vfat, mkfs.xfs) and copied in at its offset, so
// no loop device is needed to build them. Everything lives below one /var/tmp/im-* directory that cleanup() removes;
// loop devices are looked up by backing file under it, never anyone else's.
import { execaSync } from 'execa';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { globalLockPath, isImageLocked } from '@nspawn/btrfs';
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { boundLoopDevices } from '../src/index.js';

export const REPO = resolve(fileURLToPath(new URL('../../..', import.meta.url)));

export const TYPES = {
  rootX86_64: '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709',
  rootArm64: 'B921B045-1DF0-41C3-AF44-4C6F280D3FAE',
  usrX86_64: '8484680C-9521-48C6-9C11-B0720656F69E',
  usrArm64: 'B0E01050-EE5F-4390-949A-9101B17104E9',
  rootVerityX86_64: '2C7357ED-EBD2-46D9-AEC1-23D437EC2BF5',
  rootVeritySigX86_64: '41092B05-9FC8-4523-994F-2DEF0408B176',
  home: '933AC7E1-2EB4-4F13-B844-0E14E2AEF915',
  srv: '3B8F8425-20E0-4F3B-907F-1A25A76F98E8',
  var: '4D21B016-B534-45C2-A9FB-5C16E091FD2D',
  tmp: '7EC6F557-3BC5-4ACA-B293-16EF5DF639D1',
  esp: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
  generic: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
} as const;
/** the native root/usr types of this machine */
export const NATIVE = process.arch === 'arm64' ? { root: TYPES.rootArm64, usr: TYPES.usrArm64, foreign: TYPES.rootX86_64 } : { root: TYPES.rootX86_64, usr: TYPES.usrX86_64, foreign: TYPES.rootArm64 };

export type Fs = 'ext4' | 'btrfs' | 'xfs' | 'squashfs' | 'erofs' | 'vfat' | 'none';
export interface Part {
  type: string;
  /** MiB */
  size: number;
  fs?: Fs;
  /** a directory to fill the file system from */
  tree?: string;
  name?: string;
  /** sfdisk attrs, e.g. "GUID:60" (read-only) or "GUID:63" (no-auto) */
  attrs?: string;
  /** leave the file system corrupt (ext4: root inode cleared, marked with errors: fsck -a gives up) */
  corrupt?: boolean;
  /** ext4 superblock values to set with debugfs (`ssv NAME VALUE`), e.g. { state: '0', lastcheck: '20000101' } */
  superblock?: Record<string, string>;
}

const sh = (cmd: string, args: string[], input?: string) =>
  execaSync(cmd, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], stripFinalNewline: false, ...(input !== undefined ? { input } : {}) }).stdout;

export class Fixture {
  readonly dir = mkdtempSync('/var/tmp/im-test-');
  private tree?: string;

  path(name: string): string {
    return join(this.dir, name);
  }

  /** a busybox OS tree (scripts/make-busybox-tree.sh), made once */
  busybox(): string {
    if (!this.tree) {
      this.tree = this.path('tree');
      sh('bash', [join(REPO, 'scripts/make-busybox-tree.sh'), this.tree]);
    }
    return this.tree;
  }

  /** the busybox tree split: the root without /usr's content, and /usr alone */
  split(): { root: string; usr: string } {
    const t = this.busybox();
    const root = this.path('tree-root');
    if (!existsSync(root)) {
      sh('cp', ['-a', t, root]);
      sh('find', [join(root, 'usr'), '-mindepth', '1', '-delete']);
      sh('mkdir', [join(root, 'srv')]); // a mount point for the srv partition (a read-only root cannot get one made)
    }
    return { root, usr: join(t, 'usr') };
  }

  /** a file system image of SIZE MiB in its own file */
  fsImage(fs: Fs, sizeMiB: number, tree?: string, corrupt = false, superblock: Record<string, string> = {}): string {
    const f = this.path(`fs-${Math.random().toString(16).slice(2)}.img`);
    const dirArgs = (flag: string) => (tree ? [flag, tree] : []);
    switch (fs) {
      case 'ext4':
        writeFileSync(f, '');
        truncateSync(f, sizeMiB << 20);
        sh('mkfs.ext4', ['-q', '-F', '-b', '4096', ...dirArgs('-d'), f]); // 4 KiB blocks: fine on 4 KiB-sector images too
        if (corrupt) {
          sh('debugfs', ['-w', '-R', 'clri <2>', f]);
          sh('debugfs', ['-w', '-R', 'ssv state 2', f]);
        }
        for (const [k, v] of Object.entries(superblock)) sh('debugfs', ['-w', '-R', `ssv ${k} ${v}`, f]);
        break;
      case 'btrfs':
        writeFileSync(f, '');
        truncateSync(f, sizeMiB << 20);
        sh('mkfs.btrfs', ['-q', '-f', ...dirArgs('--rootdir'), f]);
        break;
      case 'xfs':
        writeFileSync(f, '');
        truncateSync(f, sizeMiB << 20);
        sh('mkfs.xfs', ['-q', '-f', f]);
        break;
      case 'squashfs':
        sh('mksquashfs', [tree ?? this.busybox(), f, '-noappend', '-quiet', '-no-progress']);
        break;
      case 'erofs':
        sh('mkfs.erofs', ['--quiet', f, tree ?? this.busybox()]);
        break;
      case 'vfat':
        sh('mkfs.vfat', ['-C', f, String(sizeMiB * 1024)]);
        break;
      case 'none':
        writeFileSync(f, '');
        break;
    }
    if (statSync(f).size > sizeMiB << 20) throw new Error(`${fs} image of ${statSync(f).size} bytes does not fit ${sizeMiB} MiB`);
    return f;
  }

  /**
   * A GPT (or MBR: label 'dos') image at NAME with PARTS one after the other from 1 MiB on, each file system copied
   * in at its partition's offset. Returns the image path and each partition's byte offset.
   */
  image(name: string, parts: Part[], opts: { sectorSize?: 512 | 4096; label?: 'gpt' | 'dos'; bootable?: boolean } = {}): { path: string; offsets: number[] } {
    const ss = opts.sectorSize ?? 512;
    const path = this.path(name);
    const total = 2 + parts.reduce((a, p) => a + p.size, 0);
    writeFileSync(path, '');
    truncateSync(path, total << 20);
    const perMiB = (1 << 20) / ss;
    let at = perMiB;
    const offsets: number[] = [];
    const lines = [`label: ${opts.label ?? 'gpt'}`, ...(ss === 4096 ? ['sector-size: 4096'] : [])];
    for (const p of parts) {
      offsets.push(at * ss);
      const size = p.size * perMiB;
      if (opts.label === 'dos') lines.push(`start=${at}, size=${size}, type=${p.type}${opts.bootable ? ', bootable' : ''}`);
      else lines.push(`start=${at}, size=${size}, type=${p.type}${p.name ? `, name="${p.name}"` : ''}${p.attrs ? `, attrs="${p.attrs}"` : ''}`);
      at += size;
    }
    if (ss === 512) sh('sfdisk', ['-q', path], `${lines.join('\n')}\n`);
    else {
      // sfdisk takes the sector size from the device: a loop device with 4 KiB sectors over the file, for this only
      const loop = sh('losetup', ['--find', '--show', '--sector-size', '4096', path]).trim();
      try {
        sh('sfdisk', ['-q', '--no-reread', '--no-tell-kernel', loop], `${lines.join('\n')}\n`);
      } finally {
        sh('losetup', ['-d', loop]);
      }
    }
    parts.forEach((p, i) => {
      if (!p.fs || p.fs === 'none') return;
      const f = this.fsImage(p.fs, p.size, p.tree, p.corrupt, p.superblock);
      sh('dd', [`if=${f}`, `of=${path}`, 'bs=1M', `seek=${offsets[i]}`, 'oflag=seek_bytes', 'conv=notrunc,sparse', 'status=none']);
      rmSync(f);
    });
    return { path, offsets };
  }

  /** the loop devices bound to files below this fixture's directory (nobody else's) */
  loops(): string[] {
    return boundLoopDevices()
      .filter((l) => l.backingFile.startsWith(`${this.dir}/`))
      .map((l) => `${l.path} ${l.backingFile}`);
  }

  /** waits until no loop device of this fixture is bound (AUTOCLEAR is quick but not instant) */
  async noLoopsLeft(timeoutMs = 10000): Promise<string[]> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const l = this.loops();
      if (l.length === 0 || Date.now() > until) return l;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** mounts whose source or mount point involve this fixture, in this namespace */
  mounts(): string[] {
    return readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .filter((l) => l.includes(this.dir));
  }

  cleanup(): void {
    // global lock files (/run/systemd/nspawn/locks/inode-DEV:INO) of our images that nobody holds: a killed owner's
    for (const f of readdirSync(this.dir)) {
      const p = join(this.dir, f);
      const g = globalLockPath(p);
      if (g && statSync(p).isFile() && existsSync(g) && !isImageLocked(p)) rmSync(g, { force: true });
    }
    // loop devices of ours still bound (a failed test): detach them by name, after checking their backing file
    for (const l of boundLoopDevices()) if (l.backingFile.startsWith(`${this.dir}/`)) execaSync('losetup', ['-d', l.path], { reject: false });
    for (const m of this.mounts().reverse()) {
      const mp = m.split(' ')[4];
      if (mp) execaSync('umount', ['-l', mp], { reject: false });
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

/** is a process alive? */
export const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
