/**
 * Opening an image for a container, as systemd-nspawn 252 does for `--image=` (nspawn.c run(), then
 * dissect_loop_device(), dissected_image_mount()): the image lock (shared with --read-only, else exclusive: "Disk
 * image ... is currently busy."), for -x a copy of the image (systemd's way) or a read-only image below an overlay
 * (ours, the default), the partitions dissected, a loop device per partition by offset, fsck of the writable ones,
 * and then a mount plan, host-side mounts in a namespace that dies with us, and a close() that leaves nothing.
 */
import {
  chmodSync,
  closeSync,
  constants as fsc,
  copyFileSync,
  fstatSync,
  openSync,
  readSync,
  realpathSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { type ImageLock, ImageBusyError, lockImage } from '@nspawn/btrfs';
import { keepOnExec, type LockSys } from '@nspawn/syscall';
import { type Designator, type DissectedImage, type DissectOptions, dissectImage } from './dissect.js';
import { ImageError, imageError } from './errors.js';
import { startHolder } from './holder.js';
import { attachLoop, blockDeviceSize, boundLoopDevices, type LoopDevice } from './loop.js';
import { executePlan, type MountedTree } from './mount.js';
import { type MountStep, mountedPartitions, planMounts, type PlanDevice, type PlanOptions } from './plan.js';
import { applyImagePolicy, type ImagePolicy, parseImagePolicy } from './policy.js';
import { extNeedsFsck } from './fsprobe.js';
import { fdReader } from './reader.js';
import { type ImageSys, realSys } from './sys.js';

export interface OpenImageOptions {
  /** `--read-only`: the image opened read-only, every mount read-only, a shared lock (default false) */
  readOnly?: boolean;
  /**
   * `-x`: the image is never written. 'overlay' (true): the partitions read-only below an overlayfs whose writable
   * layer is a tmpfs, gone with the mounts. 'copy': systemd 252's way, a copy of the image file beside it
   * (`.#machine.NAME<16 hex>`, reflinked where the file system can), deleted as soon as its loop devices hold it.
   */
  ephemeral?: boolean | 'overlay' | 'copy';
  /** `--image-policy=` (systemd 254's grammar), refusing what it does not allow; none by default, as in 252 */
  imagePolicy?: string | ImagePolicy;
  /** also mount the XBOOTLDR (/boot) and ESP (/efi) partitions, as systemd 252 does (default: they are left out) */
  bootPartitions?: boolean;
  /** fsck the file systems mounted writable first (systemd's DISSECT_IMAGE_FSCK; default: true unless read-only) */
  fsck?: boolean;
  /** LO_FLAGS_DIRECT_IO on the loop devices (default: on unless $SYSTEMD_LOOP_DIRECT_IO is false, as systemd) */
  directIo?: boolean;
  /** take the image lock (default: true unless $SYSTEMD_NSPAWN_LOCK is false) */
  lock?: boolean;
  /** architectures and the /var check, see DissectOptions */
  dissect?: DissectOptions;
  env?: NodeJS.ProcessEnv;
  /** the system calls (a double in tests) */
  sys?: ImageSys;
  /** the image lock's calls (@nspawn/syscall's LockSys, e.g. a native addon's; default koffi's) */
  lockSys?: LockSys;
}

export interface MountOptions {
  /**
   * 'private' (default): in a mount namespace of a holder process that dies with this one (see holder.ts); the
   * tree is reached at `root` (/proc/PID/root/WHERE). 'current': in this process's own mount namespace (for a
   * process that has one of its own: these mounts outlive a killed owner).
   */
  namespace?: 'private' | 'current';
}

export interface MountedImage {
  /** the mount point, in the namespace the mounts are in */
  readonly where: string;
  /** the tree as this process reaches it */
  readonly root: string;
  /** the holder's PID ('private'), for nsenter -t PID -m */
  readonly pid?: number;
  readonly steps: readonly MountStep[];
  /** unmounts (ends the holder); the image stays open */
  unmount(): Promise<void>;
}

export interface CloseOptions {
  /** wait until the loop devices are detached (default true; false when their mounts live on elsewhere) */
  wait?: boolean;
}

export interface OpenedImage {
  /** the image's real path */
  readonly path: string;
  readonly dissected: DissectedImage;
  /** the loop device of each partition that gets mounted */
  readonly devices: Readonly<Partial<Record<Designator, LoopDevice>>>;
  readonly readOnly: boolean;
  readonly ephemeral: false | 'overlay' | 'copy';
  /** notices systemd prints (a Verity partition used without integrity checking, the backup GPT header used) */
  readonly warnings: readonly string[];
  /**
   * the mount steps (data for a process in another mount namespace: see plan.ts); OPTS: the container's UID shift
   * (uid=/gid=, idmapped mounts) for a run with a user namespace
   */
  plan(opts?: Pick<PlanOptions, 'uidShift' | 'idmap' | 'inUserNamespace'>): MountStep[];
  /** mounts the image at WHERE (private namespace: optional, a private tmpfs by default) */
  mount(where?: string, opts?: MountOptions): Promise<MountedImage>;
  /**
   * Unmounts what mount() mounted, closes the loop devices (the kernel detaches each once nothing else uses it: right
   * away, or when the mounts made from the plan elsewhere go), releases the lock; idempotent. Waits (up to 2 s) until
   * the devices are detached unless `{ wait: false }`.
   */
  close(opts?: CloseOptions): Promise<void>;
  /**
   * For a program this process execve()s in its place (the runtime's helper after a hand-over): clears FD_CLOEXEC on
   * the lock files and the loop devices and returns them. That program holds them from then on (the loop devices for
   * as long as the mounts made from plan() need them to stay the image's) and releases the locks as release() would
   * (the exclusive holder removes the files). This process must not close() the image afterwards.
   */
  keepAcrossExec(): { locks: Array<{ fd: number; path: string; exclusive: boolean }>; devices: number[] };
  [Symbol.asyncDispose](): Promise<void>;
}

const falsy = (v: string | undefined) => v !== undefined && ['0', 'no', 'n', 'false', 'f', 'off'].includes(v.toLowerCase());

/** fsck.TYPE on PATH (or in /sbin, /usr/sbin), as systemd's fsck_exists_for_fstype() looks for it. */
function fsckFor(fstype: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const d of [...(env.PATH ?? '').split(':'), '/usr/sbin', '/sbin']) {
    if (!d) continue;
    const p = join(d, `fsck.${fstype}`);
    try {
      if (statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * systemd's run_fsck() (`fsck -aT NODE`), with fsck.TYPE run directly (one process instead of two; the same check):
 * errors left uncorrected (4) or a reboot wanted (2) refuse the image, other failures are ignored, as systemd does.
 */
function runFsck(image: string, designator: Designator, device: string, fstype: string, env: NodeJS.ProcessEnv): Promise<void> {
  const fsck = fsckFor(fstype, env);
  if (!fsck) return Promise.resolve();
  return new Promise((resolvePromise, reject) => {
    // node:child_process loaded on use (a clean ext4 starts no fsck: most starts never need it)
    const { spawn } = process.getBuiltinModule('node:child_process');
    const child = spawn(fsck, ['-a', device], { stdio: 'ignore', env: { PATH: env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' } });
    child.once('error', () => resolvePromise()); // could not run it: systemd ignores that too
    child.once('exit', (code) => {
      const status = code ?? 8;
      if (status & (2 | 4))
        reject(new ImageError(`${image}: File system check on image failed (the ${designator} partition, ${fstype}: fsck exit status ${status}).`, 'EUCLEAN', image));
      else resolvePromise();
    });
  });
}

/** `.#machine.NAME<16 hex>` beside the image, systemd's tempfn_random(image, "machine."). */
export function ephemeralCopyPath(image: string): string {
  return join(dirname(image), `.#machine.${basename(image)}${process.getBuiltinModule('node:crypto').randomBytes(8).toString('hex')}`);
}

function copyImage(src: string, dst: string, readOnly: boolean, isBlock: boolean): void {
  if (!isBlock) copyFileSync(src, dst, fsc.COPYFILE_EXCL | fsc.COPYFILE_FICLONE); // reflink where it can, else a copy
  else {
    const i = openSync(src, 'r');
    const o = openSync(dst, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600);
    try {
      const size = blockDeviceSize(i);
      const buf = Buffer.alloc(1 << 20);
      for (let off = 0; off < size; ) {
        const n = readSync(i, buf, 0, Math.min(buf.length, size - off), off);
        if (n === 0) break;
        writeSync(o, buf, 0, n, off);
        off += n;
      }
    } finally {
      closeSync(i);
      closeSync(o);
    }
  }
  chmodSync(dst, readOnly ? 0o400 : 0o600);
}

/** Waits (up to TIMEOUTMS) until none of LOOPS is bound any more. */
async function waitDetached(loops: readonly string[], timeoutMs = 2000): Promise<void> {
  if (loops.length === 0) return;
  const until = Date.now() + timeoutMs;
  for (;;) {
    const bound = new Set(boundLoopDevices().map((l) => l.path));
    if (!loops.some((l) => bound.has(l)) || Date.now() > until) return;
    await new Promise((r) => setTimeout(r, 5));
  }
}

// host-namespace mounts and holders to undo if the process exits without close()
const live = new Set<() => void>();
let exitHook = false;
function onExit(fn: () => void): () => void {
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => {
      for (const f of [...live].reverse()) f(); // the mounts first, then the images
    });
  }
  live.add(fn);
  return () => live.delete(fn);
}

/**
 * Opens the raw disk image (a file or a block device) at PATH for a container: locked, dissected, a loop device per
 * partition to mount. Throws an ImageError (one line naming the image) and leaves nothing behind when it cannot.
 */
export async function openImage(path: string, opts: OpenImageOptions = {}): Promise<OpenedImage> {
  const env = opts.env ?? process.env;
  const sys = opts.sys ?? realSys;
  const readOnly = opts.readOnly === true;
  const ephemeral: false | 'overlay' | 'copy' = opts.ephemeral === true ? 'overlay' : opts.ephemeral || false;
  const directIo = opts.directIo ?? !falsy(env.SYSTEMD_LOOP_DIRECT_IO);
  const policy = typeof opts.imagePolicy === 'string' ? parseImagePolicy(opts.imagePolicy) : opts.imagePolicy;

  let image: string;
  try {
    image = realpathSync(resolve(path));
  } catch (e) {
    throw imageError(path, 'cannot open the disk image', e);
  }
  const st = statSync(image);
  if (!st.isFile() && !st.isBlockDevice()) throw new ImageError(`${image}: not a regular file or block device.`, 'EINVAL', image);

  const undo: Array<() => void> = [];
  const unwind = () => {
    for (const f of undo.reverse()) {
      try {
        f();
      } catch {
        // keep undoing
      }
    }
    undo.length = 0;
  };
  try {
    let heldLock: ImageLock | undefined;
    // the lock: exclusive for a writable image, shared when it is only read (read-only, or below an overlay)
    if (opts.lock ?? !falsy(env.SYSTEMD_NSPAWN_LOCK)) {
      let lock: ImageLock;
      try {
        lock = lockImage(image, { shared: readOnly || ephemeral !== false, env, ...(opts.lockSys ? { sys: opts.lockSys } : {}) });
      } catch (e) {
        if (e instanceof ImageBusyError) throw new ImageError(`Disk image ${image} is currently busy.`, 'EBUSY', image);
        throw imageError(image, 'Failed to create image lock', e);
      }
      undo.push(() => lock.release());
      heldLock = lock;
    }

    // what the loop devices are made over: the image, or its copy for -x the systemd way
    let backing = image;
    if (ephemeral === 'copy') {
      const copy = ephemeralCopyPath(image);
      undo.push(() => {
        try {
          unlinkSync(copy);
        } catch {
          // already removed once the loop devices held it
        }
      });
      try {
        copyImage(image, copy, readOnly, st.isBlockDevice());
      } catch (e) {
        throw imageError(image, 'Failed to copy image file', e);
      }
      backing = copy;
    }

    const writable = !readOnly && ephemeral !== 'overlay';
    const parseFd = openSync(backing, fsc.O_RDONLY | fsc.O_NOCTTY);
    undo.push(() => closeSync(parseFd));
    const bst = fstatSync(parseFd); // the copy of a block device is a file
    const size = bst.isBlockDevice() ? blockDeviceSize(parseFd, sys) : bst.size;

    let dissected = dissectImage(fdReader(parseFd, size), image, opts.dissect);
    if (policy) dissected = applyImagePolicy(dissected, policy);
    const warnings = [...dissected.warnings];
    const parts = mountedPartitions(dissected, { bootPartitions: opts.bootPartitions === true });
    if (dissected.partitions['root-verity-sig'])
      throw new ImageError(
        `${image}: the image carries a signed Verity root hash (partition ${dissected.partitions['root-verity-sig'].number}); dm-verity is not supported by this nspawn build.`,
        'EOPNOTSUPP',
        image,
      );
    if (dissected.hasVerity && !dissected.hasVeritySig)
      warnings.push(
        `Note: image ${image} contains verity information, but no root hash specified and no embedded root hash signature found! Proceeding without integrity checking.`,
      );
    for (const p of parts) {
      const which = `${p.number !== undefined ? `partition ${p.number} ` : ''}(${p.designator})`;
      if (p.fstype === 'crypto_LUKS')
        throw new ImageError(`${image}: ${which} is encrypted (LUKS): Encrypted file system discovered, but decryption is not supported by this nspawn build.`, 'EUNATCH', image);
      if (!p.fstype || ['swap', 'jbd'].includes(p.fstype))
        throw new ImageError(`${image}: ${which}: File system type not supported or not known${p.fstype ? ` (${p.fstype})` : ''}.`, 'EAFNOSUPPORT', image);
    }

    // the loop devices, one per partition, by offset
    let loopFd = -1;
    undo.push(() => {
      if (loopFd >= 0) closeSync(loopFd);
    });
    const flags = (writable ? fsc.O_RDWR : fsc.O_RDONLY) | fsc.O_NOCTTY;
    let direct = directIo;
    if (direct)
      try {
        loopFd = openSync(backing, flags | fsc.O_DIRECT);
      } catch {
        direct = false; // a file system without O_DIRECT
      }
    if (loopFd < 0)
      try {
        loopFd = openSync(backing, flags);
      } catch (e) {
        throw imageError(image, 'Failed to set up loopback block device', e);
      }
    const devices: Partial<Record<Designator, LoopDevice>> = {};
    for (const p of parts) {
      let loop: LoopDevice;
      try {
        loop = attachLoop(
          loopFd,
          backing,
          {
            offset: p.offset,
            size: dissected.singleFileSystem ? 0 : p.size,
            readOnly: !writable || !p.rw,
            blockSize: dissected.sectorSize === 4096 ? 4096 : 0,
            directIo: direct,
          },
          sys,
        );
      } catch (e) {
        throw imageError(image, `Failed to set up loopback block device for ${p.number !== undefined ? `partition ${p.number} ` : ''}(${p.designator})`, e);
      }
      devices[p.designator] = loop;
      undo.push(() => loop.close());
    }
    // the loop devices hold the file now: nothing of the copy stays on disk, even if we are killed
    if (backing !== image) unlinkSync(backing);
    closeSync(loopFd); // each loop device holds the file itself
    loopFd = -1;

    // fsck what will be mounted writable, as systemd does before mounting
    if ((opts.fsck ?? writable) && writable) {
      // in parallel; all of them finished before a failure unwinds (no fsck left running on a detached device)
      // e2fsck on a clean ext2/3/4 does nothing and exits 0: not started then (its superblock says so)
      const reader = fdReader(parseFd, size);
      const toCheck = parts.filter((p) => p.rw && !(/^ext[234]$/.test(p.fstype!) && !extNeedsFsck(reader.read(p.offset + 1024, 1024))));
      const checks = await Promise.allSettled(toCheck.map((p) => runFsck(image, p.designator, devices[p.designator]!.path, p.fstype!, env)));
      const failed = checks.find((c): c is PromiseRejectedResult => c.status === 'rejected');
      if (failed) throw failed.reason;
    }

    const planDevices = () =>
      Object.fromEntries(
        Object.entries(devices).map(([d, l]) => [d, { path: l.path, fd: l.fd, offset: l.offset, size: l.size } satisfies PlanDevice]),
      ) as Partial<Record<Designator, PlanDevice>>;
    // -x --read-only needs no overlay: nothing is written anyway
    const plan = (popts: Pick<PlanOptions, 'uidShift' | 'idmap' | 'inUserNamespace'> = {}) =>
      planMounts(dissected, planDevices(), { ...popts, readOnly, overlay: ephemeral === 'overlay' && !readOnly, bootPartitions: opts.bootPartitions === true });

    const mounted = new Set<() => Promise<void>>();
    let closed = false;
    const releaseAll = [...undo];
    undo.length = 0;
    const releaseNow = () => {
      for (const f of releaseAll.reverse()) {
        try {
          f();
        } catch {
          // keep releasing
        }
      }
      releaseAll.length = 0;
    };
    // a process that ends without close() still removes its lock files (its descriptors go anyway)
    const forgetImage = onExit(releaseNow);

    const close = async (copts: CloseOptions = {}) => {
      if (closed) return;
      closed = true;
      for (const u of [...mounted]) await u();
      const paths = Object.values(devices).map((l) => l.path);
      forgetImage();
      releaseNow();
      if (copts.wait !== false) await waitDetached(paths);
    };

    const opened: OpenedImage = {
      path: image,
      dissected,
      devices,
      readOnly,
      ephemeral,
      warnings,
      plan,
      async mount(where, mopts = {}) {
        if (closed) throw new ImageError(`${image}: the image is closed.`, 'EBADF', image);
        const steps = plan();
        if ((mopts.namespace ?? 'private') === 'current') {
          if (!where) throw new ImageError(`${image}: mounting in this namespace needs a directory to mount on.`, 'EINVAL', image);
          const tree: MountedTree = executePlan(steps, resolve(where), image, sys);
          const forget = onExit(() => tree.unmount());
          const unmount = async () => {
            mounted.delete(unmount);
            forget();
            tree.unmount();
          };
          mounted.add(unmount);
          return { where: tree.where, root: tree.where, steps, unmount };
        }
        const holder = await startHolder(image, steps, where ? resolve(where) : undefined, env);
        const forget = onExit(() => {
          try {
            process.kill(holder.pid, 'SIGKILL');
          } catch {
            // gone
          }
        });
        const unmount = async () => {
          mounted.delete(unmount);
          forget();
          await holder.stop();
        };
        mounted.add(unmount);
        return { where: holder.where, root: holder.root, pid: holder.pid, steps, unmount };
      },
      close,
      keepAcrossExec() {
        const locks = [heldLock?.local, heldLock?.global].flatMap((l) => (l ? [{ fd: l.keepAcrossExec(), path: l.path, exclusive: l.exclusive }] : []));
        const fds = Object.values(devices).map((l) => {
          (sys.keepOnExec ?? keepOnExec)(l.fd);
          return l.fd;
        });
        return { locks, devices: fds };
      },
      [Symbol.asyncDispose]: () => close(),
    };
    return opened;
  } catch (e) {
    unwind();
    throw imageError(image, 'opening the image', e);
  }
}
