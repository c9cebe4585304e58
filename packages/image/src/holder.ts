/**
 * Mounts that die with their owner. A mount in a mount namespace lives until it is unmounted, whatever happens to
 * the process that made it; a mount namespace lives as long as a process is in it. So the host-side mounts of an
 * image are made by a holder: a small Node process started in a mount namespace of its own
 * (`unshare --mount --propagation private`, util-linux) with PR_SET_PDEATHSIG(SIGKILL) (`setpriv --pdeathsig`),
 * which carries out the mount plan there and then only waits. When its owner goes, however it goes (kill -9
 * included), the holder is killed or sees its stdin close, its namespace and every mount in it go with it, and the
 * loop devices, whose last user was that mount and the owner's descriptor, are detached by the kernel (AUTOCLEAR).
 * The host never sees these mounts; the owner reaches the tree through /proc/HOLDER/root/WHERE.
 *
 * Protocol: one JSON line on the holder's stdin ({ image, where, steps }), one JSON line back ({ ok, where } or
 * { error }), then the holder waits for its stdin to close.
 */
import type { ChildProcess } from 'node:child_process';
import { accessSync, constants as fsc, existsSync, mkdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ImageError } from './errors.js';
import { executePlan } from './mount.js';
import type { MountStep } from './plan.js';
import { MS_NODEV, realSys } from './sys.js';

interface Request {
  image: string;
  /** where to mount inside the holder's namespace; null: a private tmpfs on /tmp, at /tmp/root */
  where: string | null;
  steps: readonly MountStep[];
}
type Reply = { ok: true; where: string } | { error: { message: string; code: string } };

/** The private place a holder mounts an image at when not told where: its own tmpfs on /tmp. */
export const HOLDER_DEFAULT_WHERE = '/tmp/root';

/** The holder process: run by holder-main.js in its own mount namespace. */
export function holderMain(): void {
  process.on('SIGINT', () => {}); // a ^C to the terminal's process group is for the owner to handle
  process.on('SIGHUP', () => {});
  let buf = '';
  let started = false;
  const reply = (r: Reply) => process.stdout.write(`${JSON.stringify(r)}\n`);
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (chunk: string) => {
    if (started) return;
    buf += chunk;
    const nl = buf.indexOf('\n');
    if (nl < 0) return;
    started = true;
    let req: Request;
    try {
      req = JSON.parse(buf.slice(0, nl)) as Request;
    } catch {
      reply({ error: { message: 'holder: bad request', code: 'EINVAL' } });
      process.exit(1);
    }
    try {
      let where = req.where;
      if (where === null) {
        realSys.mount('nspawn-image', '/tmp', 'tmpfs', MS_NODEV, 'mode=0700');
        mkdirSync(HOLDER_DEFAULT_WHERE, { mode: 0o755 });
        where = HOLDER_DEFAULT_WHERE;
      }
      executePlan(req.steps, where, req.image);
      reply({ ok: true, where });
    } catch (e) {
      const err = e as { message?: string; code?: string };
      reply({ error: { message: err.message ?? String(e), code: err.code ?? 'EIO' } });
      process.exitCode = 1;
      process.stdin.destroy();
    }
  });
  // the owner is gone (or done): leaving takes the namespace and its mounts with us
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('close', () => process.exit(process.exitCode ?? 0));
}

function which(cmd: string): string | undefined {
  for (const d of [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/bin', '/usr/sbin', '/sbin']) {
    if (!d) continue;
    const p = join(d, cmd);
    try {
      accessSync(p, fsc.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** A running holder with an image mounted. */
export interface Holder {
  readonly pid: number;
  /** the mount point inside the holder's namespace */
  readonly where: string;
  /** the same tree seen from here: /proc/PID/root/WHERE */
  readonly root: string;
  /** ends the holder and waits until it is gone (its mounts with it) */
  stop(): Promise<void>;
  /** the holder went away on its own (killed) */
  readonly exited: boolean;
}

/**
 * The holder's script: $NSPAWN_IMAGE_HOLDER (a bundle puts it elsewhere), else holder-main.js beside this file (or in
 * dist/ when this runs from the sources, as in the tests).
 */
export function holderScript(env: NodeJS.ProcessEnv = process.env): string {
  if (env.NSPAWN_IMAGE_HOLDER) return env.NSPAWN_IMAGE_HOLDER;
  const here = fileURLToPath(new URL('./holder-main.js', import.meta.url));
  return existsSync(here) ? here : fileURLToPath(new URL('../dist/holder-main.js', import.meta.url));
}

/**
 * Starts a holder and has it carry out STEPS at WHERE in its own mount namespace (WHERE undefined: a private
 * tmpfs, see HOLDER_DEFAULT_WHERE). Resolves once everything is mounted; rejects with the holder's ImageError.
 */
export function startHolder(
  image: string,
  steps: readonly MountStep[],
  where?: string,
  env: NodeJS.ProcessEnv = process.env,
  timeoutMs = 60_000,
): Promise<Holder> {
  const unshare = which('unshare');
  if (!unshare) return Promise.reject(new ImageError(`${image}: unshare(1) (util-linux) is needed to mount the image in a namespace of its own.`, 'ENOENT', image));
  const setpriv = which('setpriv');
  const argv = [
    ...(setpriv ? [setpriv, '--pdeathsig', 'KILL', '--'] : []),
    unshare,
    '--mount',
    '--propagation',
    'private',
    '--',
    process.execPath,
    holderScript(env),
  ];
  // node:child_process loaded on use: this package is on nspawn -i's start path, which never starts a holder
  const { spawn } = process.getBuiltinModule('node:child_process');
  const child: ChildProcess = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: env.PATH ?? '/usr/bin:/bin' } });
  let exited = false;
  const gone = new Promise<void>((res) => child.once('exit', () => ((exited = true), res())));
  return new Promise<Holder>((resolve, reject) => {
    let out = '';
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    const fail = (message: string, code: string) => {
      child.kill('SIGKILL');
      void gone.then(() => reject(new ImageError(message, code, image)));
    };
    child.once('error', (e) => fail(`${image}: starting the mount holder: ${e.message}`, 'EIO'));
    const timer = setTimeout(() => fail(`${image}: the mount holder did not finish mounting within ${timeoutMs / 1000} s`, 'ETIMEDOUT'), timeoutMs);
    void gone.then(() => clearTimeout(timer));
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      let r: Reply;
      try {
        r = JSON.parse(out.slice(0, nl)) as Reply;
      } catch {
        fail(`${image}: the mount holder said: ${out.slice(0, nl)}`, 'EIO');
        return;
      }
      if ('error' in r) {
        child.stdin!.end();
        void gone.then(() => reject(new ImageError(r.error.message, r.error.code, image)));
        return;
      }
      clearTimeout(timer);
      const pid = child.pid!;
      // a mounted image does not keep this process alive: if it ends without stop(), the holder ends with it
      const refs = [child, child.stdin!, child.stdout!, child.stderr!] as Array<{ ref(): void; unref(): void }>;
      for (const r of refs) r.unref();
      resolve({
        pid,
        where: r.where,
        root: `/proc/${pid}/root${r.where}`,
        get exited() {
          return exited;
        },
        async stop() {
          if (!exited) {
            for (const r of refs) r.ref(); // until it is gone
            child.stdin!.end();
            const t = setTimeout(() => child.kill('SIGKILL'), 5000);
            await gone;
            clearTimeout(t);
          }
        },
      });
    });
    child.once('exit', (code, sig) => {
      if (!out.includes('\n')) reject(new ImageError(`${image}: the mount holder exited (${sig ?? code}) before mounting: ${err.trim() || 'no message'}`, 'EIO', image));
    });
    child.stdin!.write(`${JSON.stringify({ image, where: where ?? null, steps } satisfies Request)}\n`);
  });
}
