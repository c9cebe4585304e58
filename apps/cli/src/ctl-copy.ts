/** nspawnctl's copy verbs: copy-to, copy-from (tar streamed through the container's own tar) and bind. */
import { existsSync, mkdirSync } from 'node:fs';
import { CtlError, type CtlVerb, machine, type CtlOptions } from './ctl-common.js';
import { bindIn } from '@nspawn/assembly';
import { loadExeca, run, spawnIn, statusOf } from './ctl-exec.js';

async function bind(args: string[], opts: CtlOptions): Promise<number> {
  if (args.length < 2 || args.length > 3) throw new CtlError('bind needs NAME SOURCE [DESTINATION].');
  const [name, src, dst = args[1]!] = args as [string, string, string?];
  if (!src.startsWith('/') || !dst.startsWith('/')) throw new CtlError('Source and destination paths must be absolute.');
  if (src.includes(':') || dst.includes(':')) throw new CtlError('Paths with a colon are not supported.');
  const m = await machine(name);
  const leader = m.leader?.pid;
  if (!leader) throw new CtlError(`Machine ${m.name} has no leader process.`);
  try {
    await bindIn({ leader, source: src, destination: dst, readOnly: opts.readOnly === true, mkdir: opts.mkdir === true });
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    throw new CtlError(`Failed to bind mount ${src} on ${dst} in machine ${name}.`);
  }
  return 0;
}

/**
 * copy-to: host SRC (read on the host) streamed as tar into the container, unpacked there by the container's own
 * tar into a temporary directory beside DST and moved into place (so the container's symlinks resolve inside it).
 */
async function copyTo(args: string[], opts: CtlOptions): Promise<number> {
  if (args.length < 2 || args.length > 3) throw new CtlError('copy-to needs NAME SOURCE [DESTINATION].');
  const [name, src, dst = args[1]!] = args as [string, string, string?];
  if (!src.startsWith('/') || !dst.startsWith('/')) throw new CtlError('Source and destination paths must be absolute.');
  if (!existsSync(src)) throw new CtlError(`Failed to copy: ${src} does not exist.`);
  const m = await machine(name);
  const { dirname, basename } = await import('node:path');
  const script =
    'set -e; d=$(dirname "$1"); t=$(mktemp -d "$d/.#copy.XXXXXX"); trap \'rm -rf "$t"\' EXIT; tar -C "$t" -xpf -; ' +
    'if [ -e "$1" ] || [ -L "$1" ]; then if [ "$3" = 1 ]; then rm -rf "$1"; else echo "$1: File exists" >&2; exit 17; fi; fi; mv "$t/$2" "$1"';
  await loadExeca();
  const inside = spawnIn(m, 'root', ['/bin/sh', '-c', script, 'sh', dst, basename(src), opts.force ? '1' : '0'], [], { stdio: ['pipe', 'inherit', 'inherit'] });
  const tar = run('tar', ['--numeric-owner', '-C', dirname(src), '-cf', '-', basename(src)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const stdin = inside.process.stdin!;
  stdin.on('error', () => {}); // the container side may end first (EPIPE): its status tells
  if (tar.stdout) tar.stdout.pipe(stdin);
  else stdin.end(); // tar did not start: its status tells
  const [ra, b] = await Promise.all([tar, inside.done]);
  const a = statusOf(ra);
  if (a !== 0 || b !== 0) throw new CtlError(`Failed to copy ${src} to ${dst} in machine ${name}.`);
  return 0;
}

/** copy-from: the container's tar streams SRC out; we unpack it safely (@nspawn/import) beside DST and rename. */
async function copyFrom(args: string[], opts: CtlOptions): Promise<number> {
  if (args.length < 2 || args.length > 3) throw new CtlError('copy-from needs NAME SOURCE [DESTINATION].');
  const [name, src, dst = args[1]!] = args as [string, string, string?];
  if (!src.startsWith('/') || !dst.startsWith('/')) throw new CtlError('Source and destination paths must be absolute.');
  const m = await machine(name);
  const { dirname, basename, join: pjoin } = await import('node:path');
  const { mkdtempSync, renameSync, rmSync, createWriteStream, lstatSync } = await import('node:fs');
  const { extractTar } = await import('@nspawn/import');
  let exists = false;
  try {
    lstatSync(dst);
    exists = true;
  } catch {
    // free
  }
  if (exists && !opts.force) throw new CtlError(`${dst}: File exists (--force replaces it).`);
  const tmp = mkdtempSync(pjoin(dirname(dst), '.#copy-'));
  try {
    const archive = pjoin(tmp, '.archive.tar');
    mkdirSync(pjoin(tmp, 'x'));
    await loadExeca();
    const inside = spawnIn(m, 'root', ['tar', '-C', dirname(src), '-cf', '-', basename(src)], [], { stdio: ['ignore', 'pipe', 'inherit'] });
    const outf = createWriteStream(archive);
    inside.process.stdout!.pipe(outf);
    const code = await inside.done;
    await new Promise((r) => outf.close(r));
    if (code !== 0) throw new CtlError(`Failed to copy ${src} from machine ${name}.`);
    await extractTar(archive, pjoin(tmp, 'x'), { label: `the archive of ${src} from machine ${name}` });
    if (exists) rmSync(dst, { recursive: true, force: true });
    renameSync(pjoin(tmp, 'x', basename(src)), dst);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return 0;
}

export const copyVerbs: Record<string, CtlVerb> = {
  bind,
  'copy-to': copyTo,
  'copy-from': copyFrom,
};
