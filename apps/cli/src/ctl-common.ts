/** What nspawnctl's verbs share: its error, output, nspawnd's varlink calls and machinectl's table and JSON output. */
import { readFileSync, writeSync } from 'node:fs';
import { isNoDaemon, listMachines, type MachineInfo, machineSocketPath, varlinkCall, VarlinkError } from '@nspawn/runtime';

/** The options of the command line (ctl-args.ts), as the verbs see them. */
export interface CtlOptions {
  output: 'table' | 'json' | 'json-pretty' | 'short';
  legend: boolean;
  signal?: number;
  killWhom?: 'all' | 'leader';
  readOnly: boolean;
  mkdir: boolean;
  follow: boolean;
  lines: number;
  verify: 'yes' | 'no' | 'checksum' | 'signature';
  /** export-raw: the compression (default: from the file's suffix) */
  format?: 'uncompressed' | 'xz' | 'gzip' | 'bzip2' | 'zstd';
  force: boolean;
  all: boolean;
  uid?: string;
  setenv: string[];
  quiet: boolean;
  /** install-units: the root directory to install into (default /) */
  root?: string;
}

/** A failure to tell the user in one line (exit status 1). */
export class CtlError extends Error {}

export const out = (text: string) => void writeSync(1, text);
export const err = (text: string) => void writeSync(2, text);

/** A verb: its arguments (after the verb) and the options; resolves to the exit status. */
export type CtlVerb = (args: string[], opts: CtlOptions) => Promise<number> | number;

export async function machine(name: string): Promise<MachineInfo> {
  const all = await listMachines({ name, socket: machineSocketPath() }).catch(noDaemon);
  const m = all[0];
  if (!m) throw new CtlError(`No machine '${name}' known.`);
  return m;
}

export function noDaemon(e: unknown): never {
  if (isNoDaemon(e)) throw new CtlError(`nspawnd is not running (no socket at ${machineSocketPath()}).`);
  if (e instanceof VarlinkError) throw new CtlError(typeof e.parameters.message === 'string' ? e.parameters.message : e.error);
  throw new CtlError((e as Error).message);
}

export async function call(
  method: string,
  params: Record<string, unknown>,
  more = false,
  socket = machineSocketPath(),
  onReply?: (reply: Record<string, unknown>) => void,
): Promise<Record<string, unknown>[]> {
  try {
    return await varlinkCall(socket, method, params, { more, ...(onReply ? { onReply } : {}) });
  } catch (e) {
    if (e instanceof VarlinkError && e.error === 'io.systemd.Machine.NoSuchMachine') throw new CtlError(`No machine '${String(params.name)}' known.`);
    if (e instanceof VarlinkError && e.error === 'io.systemd.MachineImage.NoSuchImage')
      throw new CtlError(params.name === undefined ? 'No images.' : `No image '${String(params.name)}' known.`);
    return noDaemon(e);
  }
}

/** A table as machinectl prints it: upper-case header, columns padded, then a count line. */
export function table(cols: string[], rows: string[][], opts: CtlOptions, footer: string): string {
  const widths = cols.map((c, i) => Math.max(opts.legend ? c.length : 0, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((v, i) => (i === r.length - 1 ? v : v.padEnd(widths[i]!))).join(' ').trimEnd() + '\n';
  let s = '';
  if (opts.legend && rows.length > 0) s += line(cols);
  for (const r of rows) s += line(r);
  if (opts.legend) s += `${rows.length > 0 ? '\n' : ''}${footer}\n`;
  return s;
}

export function json(v: unknown, opts: CtlOptions): string {
  return (opts.output === 'json-pretty' ? JSON.stringify(v, null, 2) : JSON.stringify(v)) + '\n';
}

/** The last N lines of a file (the console log). */
export function tail(path: string, n: number): string[] {
  try {
    const lines = readFileSync(path, 'utf8').split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    return n === 0 ? [] : lines.slice(-n);
  } catch {
    return [];
  }
}
