/**
 * Disk images for the -i tests, below one /var/tmp/im-run-* directory that cleanup() removes: sfdisk writes the GPT,
 * mkfs.ext4 -d fills each file system in a file of its own, copied in at its offset (no loop device is needed to make
 * them). rewriteGpt() makes hostile tables (headers that lie with matching CRCs, overlapping entries). Loop devices
 * are looked up by backing file under the directory, never anyone else's.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { globalLockPath, isImageLocked } from '@nspawn/btrfs';
import { NSPAWN_BIN, REPO } from './helpers.js';

/** What an nspawn run ended with. */
export interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
  err: string;
}

/** nspawn ARGS (quiet, unregistered, console pipe), its exit and output; ON_START gets its PID and output once the payload printed READY */
export function nspawn(args: string[], onStart?: (pid: number, out: string) => void, env: NodeJS.ProcessEnv = process.env): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [NSPAWN_BIN, '-q', '--register=no', '--console=pipe', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (onStart && out.includes('READY')) {
        const f = onStart;
        onStart = undefined;
        f(child.pid!, out);
      }
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, out, err }));
  });
}

export const TYPES = {
  rootX86_64: '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709',
  rootArm64: 'B921B045-1DF0-41C3-AF44-4C6F280D3FAE',
  usrX86_64: '8484680C-9521-48C6-9C11-B0720656F69E',
  usrArm64: 'B0E01050-EE5F-4390-949A-9101B17104E9',
  home: '933AC7E1-2EB4-4F13-B844-0E14E2AEF915',
} as const;
export const NATIVE =
  process.arch === 'arm64'
    ? { root: TYPES.rootArm64, usr: TYPES.usrArm64, foreignRoot: TYPES.rootX86_64, foreignUsr: TYPES.usrX86_64 }
    : { root: TYPES.rootX86_64, usr: TYPES.usrX86_64, foreignRoot: TYPES.rootArm64, foreignUsr: TYPES.usrArm64 };

export interface Part {
  type: string;
  /** MiB */
  size: number;
  /** fill an ext4 file system from this directory (none: the partition stays zeroes) */
  tree?: string;
}

const run = (cmd: string, args: string[], input?: string) =>
  execFileSync(cmd, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], ...(input !== undefined ? { input } : {}) }).toString();

export class ImageFixture {
  readonly dir = mkdtempSync('/var/tmp/im-run-');

  path(name: string): string {
    return join(this.dir, name);
  }

  /** a busybox OS tree (scripts/make-busybox-tree.sh) at NAME below the fixture, made once */
  tree(name = 'tree'): string {
    const t = this.path(name);
    if (!existsSync(t)) run('bash', [join(REPO, 'scripts/make-busybox-tree.sh'), t]);
    return t;
  }

  /** a GPT image NAME with PARTS one after the other from 1 MiB on */
  image(name: string, parts: Part[]): string {
    const path = this.path(name);
    const total = 2 + parts.reduce((a, p) => a + p.size, 0);
    writeFileSync(path, '');
    truncateSync(path, total << 20);
    let at = 2048;
    const lines = ['label: gpt'];
    const offsets: number[] = [];
    for (const p of parts) {
      offsets.push(at * 512);
      lines.push(`start=${at}, size=${p.size * 2048}, type=${p.type}`);
      at += p.size * 2048;
    }
    run('sfdisk', ['-q', path], `${lines.join('\n')}\n`);
    parts.forEach((p, i) => {
      if (!p.tree) return;
      const f = this.path(`fs-${i}-${name}`);
      writeFileSync(f, '');
      truncateSync(f, p.size << 20);
      run('mkfs.ext4', ['-q', '-F', '-b', '4096', '-d', p.tree, f]);
      run('dd', [`if=${f}`, `of=${path}`, 'bs=1M', `seek=${offsets[i]}`, 'oflag=seek_bytes', 'conv=notrunc,sparse', 'status=none']);
      rmSync(f);
    });
    return path;
  }

  /** the busybox tree in one native root partition */
  simple(name: string, tree = this.tree()): string {
    return this.image(name, [{ type: NATIVE.root, size: 32, tree }]);
  }

  /**
   * Rewrites both GPT headers of PATH (and their entry arrays) with HEADER and ENTRY changes, CRCs made to match again:
   * a table that lies consistently. ENTRY gets each 128-byte entry and its index.
   */
  rewriteGpt(path: string, change: { header?: (h: Buffer) => void; entry?: (e: Buffer, i: number) => void }): void {
    const fd = openSync(path, 'r+');
    try {
      const size = statSync(path).size;
      for (const lba of [1, size / 512 - 1]) {
        const h = Buffer.alloc(92);
        readSync(fd, h, 0, 92, lba * 512);
        if (h.toString('latin1', 0, 8) !== 'EFI PART') throw new Error(`no GPT header at LBA ${lba} of ${path}`);
        const entriesLba = Number(h.readBigUInt64LE(72));
        const count = h.readUInt32LE(80);
        const esize = h.readUInt32LE(84);
        const entries = Buffer.alloc(count * esize);
        readSync(fd, entries, 0, entries.length, entriesLba * 512);
        if (change.entry) for (let i = 0; i < count; i++) change.entry(entries.subarray(i * esize, (i + 1) * esize), i);
        h.writeUInt32LE(crc32(entries), 88);
        writeSync(fd, entries, 0, entries.length, entriesLba * 512);
        change.header?.(h);
        h.writeUInt32LE(0, 16);
        h.writeUInt32LE(crc32(h.subarray(0, h.readUInt32LE(12) <= 92 ? h.readUInt32LE(12) : 92)), 16);
        writeSync(fd, h, 0, 92, lba * 512);
      }
    } finally {
      closeSync(fd);
    }
  }

  /** overwrites BYTES at OFFSET of PATH */
  poke(path: string, offset: number, bytes: Buffer): void {
    const fd = openSync(path, 'r+');
    try {
      writeSync(fd, bytes, 0, bytes.length, offset);
    } finally {
      closeSync(fd);
    }
  }

  sha256(path: string): string {
    return createHash('sha256').update(readFileSync(path)).digest('hex');
  }

  /** loop devices bound to files below this fixture (from /sys, as `losetup -l` shows them) */
  loops(): string[] {
    const out: string[] = [];
    for (const d of readdirSync('/sys/block').filter((n) => n.startsWith('loop'))) {
      let backing: string;
      try {
        backing = readFileSync(`/sys/block/${d}/loop/backing_file`, 'utf8').trim();
      } catch {
        continue; // not bound
      }
      if (backing.startsWith(`${this.dir}/`)) out.push(`/dev/${d} ${backing}`);
    }
    return out;
  }

  /** `losetup -l` lines naming this fixture's files */
  losetupLines(): string[] {
    return run('losetup', ['-l', '-n', '-O', 'NAME,BACK-FILE']).split('\n').filter((l) => l.includes(this.dir));
  }

  /** waits until no loop device of this fixture is bound (AUTOCLEAR follows the last close, the last mount's end) */
  async noLoopsLeft(timeoutMs = 10000): Promise<string[]> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const l = [...this.loops(), ...this.losetupLines()];
      if (l.length === 0 || Date.now() > until) return l;
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** this namespace's mounts that involve the fixture */
  mounts(): string[] {
    return readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .filter((l) => l.includes(this.dir));
  }

  /** cleanup() after the tests, with what the runs left (loop devices within TIMEOUTMS, mounts) for them to check: none */
  async finish(timeoutMs = 2000): Promise<{ loops: string[]; mounts: string[] }> {
    const loops = await this.noLoopsLeft(timeoutMs);
    const mounts = this.mounts();
    this.cleanup();
    return { loops, mounts };
  }

  cleanup(): void {
    // the global lock files (/run/systemd/nspawn/locks/inode-DEV:INO) of our images that nobody holds (a killed nspawn's)
    for (const f of readdirSync(this.dir)) {
      const p = join(this.dir, f);
      const g = statSync(p).isFile() ? globalLockPath(p) : undefined;
      if (g && existsSync(g) && !isImageLocked(p)) rmSync(g, { force: true });
    }
    for (const l of this.loops()) execFileSync('losetup', ['-d', l.split(' ')[0]!], { stdio: 'ignore' });
    for (const m of this.mounts().reverse()) {
      const mp = m.split(' ')[4];
      if (mp) execFileSync('umount', ['-l', mp], { stdio: 'ignore' });
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
