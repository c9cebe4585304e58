/**
 * import-tar from the view: the same @nspawn/import importTar() `nspawnctl import-tar FILE [NAME]` calls, run in a
 * child process of nspawnd (./import-child.ts: the extraction is synchronous, and nspawnd's event loop must go on
 * answering its socket meanwhile). Progress is what the child has read (/proc/PID/io rchar, from the moment it
 * said it starts) against what it will read: the archive, plus the decompressed tar for a gzip one (its size is in
 * the gzip trailer). Other compressions are decompressed by xz/bzip2/zstd processes: only the bytes are shown.
 */
import { execa, type ResultPromise } from 'execa';
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { basename, isAbsolute, join } from 'node:path';
import { imageNameIsValid } from '@nspawn/settings';

export interface ImportJob {
  id: number;
  file: string;
  /** the image name asked for, or the one import-tar derived (known at the end) */
  name: string | undefined;
  state: 'running' | 'done' | 'failed';
  /** bytes read so far */
  done: number;
  /** bytes to read, when known */
  total: number | undefined;
  error?: string;
  started: number;
  ended?: number;
}

/** A request the view refuses before anything starts: its message is the one line the page shows. */
export class ImportRefused extends Error {}

export const MAX_RUNNING = 4;
const KEEP_FINISHED = 20;
const POLL_MS = 200;

/** The script the child runs: the bundle beside the view's, or (tests from source) the TypeScript file. */
function childScript(dir: string): string {
  for (const f of ['nspawnd-import.cjs', 'import-child.ts']) if (existsSync(join(dir, f))) return join(dir, f);
  throw new Error(`the import helper is missing in ${dir}`);
}

/** What importTar will read: the archive, and for a gzip one the tar in it (ISIZE of the trailer, mod 2^32). */
function expectedBytes(file: string): number | undefined {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const head = Buffer.alloc(6);
    readSync(fd, head, 0, 6, 0);
    if (head[0] === 0x1f && head[1] === 0x8b && size >= 18) {
      const tail = Buffer.alloc(4);
      readSync(fd, tail, 0, 4, size - 4);
      return size + tail.readUInt32LE(0);
    }
    if (head.subarray(0, 3).toString('latin1') === 'BZh' || head[0] === 0xfd || head.readUInt32LE(0) === 0xfd2fb528) return undefined;
    return size;
  } finally {
    closeSync(fd);
  }
}

function rchar(pid: number): number | undefined {
  try {
    const m = /^rchar:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export class ImportJobs {
  private readonly jobs: ImportJob[] = [];
  private readonly children = new Map<number, ResultPromise>();
  private nextId = 1;

  constructor(
    private readonly root: string,
    private readonly scriptDir: string,
    private readonly log: (line: string) => void,
  ) {}

  /** Starts importing FILE (an absolute path to a regular file on the host) as image NAME (or the name derived from FILE). */
  start(file: unknown, name: unknown): ImportJob {
    if (typeof file !== 'string' || file === '' || !isAbsolute(file)) throw new ImportRefused('Give the archive as an absolute path on the host.');
    if (name !== undefined && name !== null && name !== '' && (typeof name !== 'string' || !imageNameIsValid(name)))
      throw new ImportRefused(`Image name '${String(name)}' is invalid.`);
    let total: number | undefined;
    try {
      const fd = openSync(file, 'r');
      const regular = fstatSync(fd).isFile();
      closeSync(fd);
      if (!regular) throw new ImportRefused(`${file}: not a regular file.`);
      total = expectedBytes(file);
    } catch (e) {
      if (e instanceof ImportRefused) throw e;
      throw new ImportRefused(`${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'No such file' : (e as Error).message}`);
    }
    if (this.jobs.filter((j) => j.state === 'running').length >= MAX_RUNNING) throw new ImportRefused(`${MAX_RUNNING} imports are running already: wait for one to end.`);
    const job: ImportJob = { id: this.nextId++, file, name: typeof name === 'string' && name !== '' ? name : undefined, state: 'running', done: 0, total, started: Date.now() };
    this.jobs.push(job);
    const finished = this.jobs.filter((j) => j.state !== 'running');
    if (finished.length > KEEP_FINISHED) this.jobs.splice(this.jobs.indexOf(finished[0]!), 1);
    // execa as node's spawn(): no buffering, never rejecting, not killed when nspawnd exits (see close())
    const child = execa(process.execPath, [childScript(this.scriptDir), file, job.name ?? '', this.root], {
      stdio: ['ignore', 'pipe', 'pipe'],
      buffer: false,
      reject: false,
      cleanup: false,
      forceKillAfterDelay: false,
    });
    this.children.set(job.id, child);
    let out = '';
    let err = '';
    let base: number | undefined;
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (base === undefined && out.includes('start\n')) base = rchar(child.pid!);
    });
    child.stderr!.on('data', (d: Buffer) => {
      if (err.length < 4096) err += d.toString();
    });
    const timer = setInterval(() => {
      const r = base === undefined ? undefined : rchar(child.pid!);
      if (r !== undefined && base !== undefined) job.done = Math.max(job.done, r - base);
    }, POLL_MS);
    const end = (ok: boolean, msg?: string) => {
      clearInterval(timer);
      this.children.delete(job.id);
      if (job.state !== 'running') return;
      job.ended = Date.now();
      job.state = ok ? 'done' : 'failed';
      if (ok && job.total !== undefined) job.done = job.total;
      if (msg !== undefined) job.error = msg;
      this.log(ok ? `imported ${file} as image ${job.name}` : `import of ${file} failed: ${msg}`);
    };
    // never rejects (reject: false): resolves when the child has ended, or failed to start
    void child.then((result) => {
      if (result.exitCode === undefined && result.signal === undefined) {
        end(false, result.cause instanceof Error ? result.cause.message : result.shortMessage);
        return;
      }
      const code = result.exitCode ?? null;
      const last = out.trim().split('\n').pop() ?? '';
      let r: { ok?: boolean; name?: string; error?: string } = {};
      try {
        r = JSON.parse(last) as typeof r;
      } catch {
        // no answer: killed, or crashed
      }
      if (r.ok === true && code === 0) {
        if (typeof r.name === 'string') job.name = r.name;
        end(true);
      } else end(false, r.error ?? (err.trim().split('\n').pop() || `the import ended with status ${code}`));
    });
    return job;
  }

  list(): ImportJob[] {
    return this.jobs.map((j) => ({ ...j, file: j.file, ...(j.name === undefined ? { name: basename(j.file) } : {}) }));
  }

  /**
   * nspawnd stops: imports under way are let finish (a child killed in the middle of its synchronous extraction would
   * leave its hidden temporary image behind); they end on their own, and nobody is waiting for their answer.
   */
  close(): void {
    for (const c of this.children.values()) {
      c.stdout?.destroy();
      c.stderr?.destroy();
      c.nodeChildProcess.unref();
    }
    this.children.clear();
  }
}
