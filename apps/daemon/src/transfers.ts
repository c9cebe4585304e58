/**
 * The image transfers nspawnd runs (systemd-importd 252's transfers): pull-raw, import-raw, import-fs and export-raw
 * through @nspawn/import, each with an ID, listed while it runs and cancelled on request (io.nspawn.Transfer).
 * A transfer writes beside the store and renames when complete; a cancelled or failed one removes what it wrote
 * (the library's AbortSignal path), so nothing is left: no partial file, no temporary, no listed image.
 *
 * "-" as import-raw's FILE or export-raw's FILE is the caller's stdin or stdout: a duplicate of the peer's
 * descriptor 0 or 1 by pidfd_getfd(2) (the caller is root, checked by the socket; machinectl hands the descriptor
 * over D-Bus instead).
 */
import { isAbsolute } from 'node:path';
import { findImage, ImageError } from '@nspawn/btrfs';
import { pidfdGetfd } from '@nspawn/syscall';
import { VarlinkError, type VarlinkContext, type VarlinkMethod, type VarlinkParams } from '@nspawn/runtime';
import { imageNameIsValid } from '@nspawn/settings';

type VerifyMode = 'no' | 'checksum' | 'signature';
type ExportFormat = 'uncompressed' | 'xz' | 'gzip' | 'bzip2' | 'zstd';
/** @nspawn/import's transfers: a bundle of their own (nspawnd-transfers.cjs), loaded at the first transfer */
const ops = () => import('./transfer-ops.js');

export type TransferType = 'pull-raw' | 'import-raw' | 'import-fs' | 'export-raw';

export interface TransferInfo {
  id: number;
  type: TransferType;
  /** the URL, file or directory (pull, import), or the image (export) */
  remote: string;
  /** the image name (pull, import), or the file (export) */
  local: string;
  /** 0..1, or -1 when the size is not known */
  progress: number;
  verify?: VerifyMode;
}

interface Running extends TransferInfo {
  controller: AbortController;
  done: Promise<unknown>;
}

const invalid = (parameter: string) => new VarlinkError('org.varlink.service.InvalidParameter', { parameter });
const failed = (message: string) => new VarlinkError('io.nspawn.Transfer.Failed', { message });

export class Transfers {
  private nextId = 1;
  private readonly running = new Map<number, Running>();

  constructor(
    private readonly root: string,
    private readonly log: (line: string) => void = () => {},
  ) {}

  list(): TransferInfo[] {
    return [...this.running.values()].map(({ controller: _c, done: _d, ...t }) => ({ ...t }));
  }

  /** Cancels transfer ID; resolves once it has cleaned up. */
  async cancel(id: number): Promise<boolean> {
    const t = this.running.get(id);
    if (!t) return false;
    t.controller.abort();
    await t.done.catch(() => {});
    return true;
  }

  /** Cancels every transfer (nspawnd stopping): each removes what it wrote. */
  async cancelAll(): Promise<void> {
    await Promise.all([...this.running.keys()].map((id) => this.cancel(id)));
  }

  /**
   * Runs WORK as a transfer: an ID, listed until it ends; with MORE, replies `{ id }` at once and `{ id, progress }`
   * as it goes (at most every 200 ms), then the result.
   */
  private async run(
    ctx: VarlinkContext,
    info: Omit<TransferInfo, 'id' | 'progress'>,
    work: (signal: AbortSignal, progress: (done: number, total: number | undefined) => void) => Promise<Record<string, unknown>>,
  ): Promise<Record<string, unknown>> {
    if (info.type !== 'export-raw')
      for (const t of this.running.values())
        if (t.type !== 'export-raw' && t.local === info.local) throw failed(`Transfer for ${info.local} already in progress.`);
    const id = this.nextId++;
    const controller = new AbortController();
    const t: Running = { ...info, id, progress: -1, controller, done: Promise.resolve() };
    const more = ctx.call.more === true;
    if (more) ctx.reply({ id });
    let last = 0;
    const progress = (done: number, total: number | undefined) => {
      t.progress = total ? Math.min(1, done / total) : -1;
      const now = Date.now();
      if (more && now - last >= 200) {
        last = now;
        ctx.reply({ id, done, ...(total !== undefined ? { total } : {}) });
      }
    };
    this.log(`transfer ${id}: ${info.type} ${info.remote} -> ${info.local}`);
    const p = work(controller.signal, progress);
    t.done = p;
    this.running.set(id, t);
    try {
      return { id, ...(await p) };
    } catch (e) {
      const c = (e as { cancelled?: boolean }).cancelled === true;
      this.log(`transfer ${id}: ${c ? 'cancelled' : `failed: ${(e as Error).message}`}`);
      if (c) throw new VarlinkError('io.nspawn.Transfer.Cancelled', { id, message: (e as Error).message });
      if (e instanceof VarlinkError) throw e;
      throw failed((e as Error).message);
    } finally {
      this.running.delete(id);
    }
  }

  methods(): Record<string, VarlinkMethod> {
    const str = (p: Record<string, unknown>, k: string) => (typeof p[k] === 'string' ? (p[k] as string) : undefined);
    const optName = (p: Record<string, unknown>) => {
      const n = str(p, 'name');
      if (n !== undefined && !imageNameIsValid(n)) throw invalid('name');
      return n;
    };
    /** the caller's stdin or stdout: a duplicate of the very descriptor (pidfd_getfd), pipes and sockets included */
    const peerFd = (ctx: VarlinkContext, n: 0 | 1): number => {
      const what = n === 0 ? 'standard input' : 'standard output';
      if (!ctx.peer) throw failed(`'-' needs a caller on nspawnd's socket (its ${what})`);
      try {
        return pidfdGetfd(ctx.peer.pid, n);
      } catch (e) {
        throw failed(`Cannot get the caller's ${what}: ${(e as Error).message}`);
      }
    };
    const m: Record<string, [VarlinkParams, VarlinkMethod['handler']]> = {
      'io.nspawn.Transfer.PullRaw': [{ url: { type: 'string', required: true }, name: 'string', verify: 'string', readOnly: 'boolean', keyring: 'string' }, (p, ctx) => {
        const name = optName(p);
        const verify = (str(p, 'verify') ?? 'checksum') as VerifyMode;
        if (!['no', 'checksum', 'signature'].includes(verify)) throw invalid('verify');
        const url = p.url as string;
        return this.run(ctx, { type: 'pull-raw', remote: url, local: name ?? url, verify }, async (signal, progress) => {
          const r = await (await ops()).pullRaw(url, { root: this.root, ...(name ? { name } : {}), verify, readOnly: p.readOnly === true, signal, progress, ...(str(p, 'keyring') ? { keyring: str(p, 'keyring')! } : {}) });
          return { name: r.name, path: r.path, size: r.size };
        });
      }],
      'io.nspawn.Transfer.ImportRaw': [{ file: { type: 'string', required: true }, name: 'string', readOnly: 'boolean' }, (p, ctx) => {
        const name = optName(p);
        const file = p.file as string;
        if (file === '-' && name === undefined) throw failed('Need an image name when importing from standard input.');
        if (file !== '-' && !isAbsolute(file)) throw invalid('file');
        return this.run(ctx, { type: 'import-raw', remote: file, local: name ?? file }, async (signal, progress) => {
          const src = file === '-' ? { fd: peerFd(ctx, 0), label: 'standard input' } : file;
          const r = await (await ops()).importRaw(src, { root: this.root, ...(name ? { name } : {}), readOnly: p.readOnly === true, signal, progress });
          return { name: r.name, path: r.path, size: r.size };
        });
      }],
      'io.nspawn.Transfer.ImportFs': [{ directory: { type: 'string', required: true }, name: 'string', readOnly: 'boolean' }, (p, ctx) => {
        const name = optName(p);
        const dir = p.directory as string;
        if (!isAbsolute(dir)) throw invalid('directory');
        return this.run(ctx, { type: 'import-fs', remote: dir, local: name ?? dir }, async (signal) => {
          const r = await (await ops()).importFs(dir, { root: this.root, ...(name ? { name } : {}), readOnly: p.readOnly === true, signal });
          return { name: r.name, path: r.path };
        });
      }],
      'io.nspawn.Transfer.ExportRaw': [{ name: { type: 'string', required: true }, file: 'string', format: 'string' }, (p, ctx) => {
        const name = p.name as string;
        if (!imageNameIsValid(name)) throw invalid('name');
        const format = str(p, 'format') as ExportFormat | undefined;
        if (format !== undefined && !['uncompressed', 'xz', 'gzip', 'bzip2', 'zstd'].includes(format)) throw invalid('format');
        const file = str(p, 'file') ?? '-';
        if (file !== '-' && !isAbsolute(file)) throw invalid('file');
        let image: string;
        try {
          const loc = findImage(name, { root: this.root });
          if (loc.type !== 'raw') throw failed(`Image '${name}' is a ${loc.type}, not a raw image: export-tar exports it.`);
          image = loc.realPath;
        } catch (e) {
          if (e instanceof ImageError && e.code === 'ENOENT') throw new VarlinkError('io.systemd.MachineImage.NoSuchImage', { message: `No image '${name}' known` });
          if (e instanceof ImageError) throw failed(e.message);
          throw e;
        }
        return this.run(ctx, { type: 'export-raw', remote: name, local: file }, async (signal, progress) => {
          const { exportRaw } = await ops();
          if (file !== '-') return { size: (await exportRaw(image, file, { ...(format ? { format } : {}), signal, progress })).size };
          return { size: (await exportRaw(image, { fd: peerFd(ctx, 1), label: 'standard output' }, { format: format ?? 'uncompressed', signal, progress })).size };
        });
      }],
      'io.nspawn.Transfer.List': [{}, (_p, ctx) => {
        const all = this.list().map((t) => ({ ...t }));
        if (all.length === 0) return {};
        if (!ctx.call.more && all.length > 1) throw new VarlinkError('org.varlink.service.ExpectedMore', {});
        for (const t of all.slice(0, -1)) ctx.reply(t);
        return all[all.length - 1]!;
      }],
      'io.nspawn.Transfer.Cancel': [{ id: { type: 'uint', required: true } }, async (p) => {
        if (!(await this.cancel(p.id as number))) throw new VarlinkError('io.nspawn.Transfer.NoSuchTransfer', { message: `No transfer by id ${String(p.id)}` });
        return {};
      }],
    };
    return Object.fromEntries(Object.entries(m).map(([k, [params, handler]]) => [k, { params, handler }]));
  }
}
