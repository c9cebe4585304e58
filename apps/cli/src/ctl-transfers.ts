/**
 * nspawnctl's raw-image transfers and their management, as machinectl 252's: pull-raw, import-raw, import-fs and
 * export-raw run in nspawnd (io.nspawn.Transfer), which streams their progress back (a bar on a terminal);
 * list-transfers and cancel-transfer; and show-image, machined's image (or pool) properties as KEY=VALUE.
 * Interrupting nspawnctl leaves the transfer running in nspawnd, as machinectl does ("Continuing ... in the
 * background"): cancel-transfer ends it, and then nothing of it is left.
 */
import { resolve } from 'node:path';
import { type MachineImageInfo as Image, nspawndPaths } from '@nspawn/runtime';
import { imageNameIsValid } from '@nspawn/settings';
import type { CtlOptions } from './ctl-common.js';
import { type CtlContext, progressBar, type Verb } from './ctl-images.js';

function checkName(ctx: CtlContext, n: string | undefined): void {
  if (n === undefined || imageNameIsValid(n)) return;
  // eslint-disable-next-line no-control-regex
  ctx.fail(`Image name '${n.replace(/[\x00-\x1f\x7f\\']/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)}' is invalid.`);
}

/**
 * Runs the transfer METHOD in nspawnd: prints its ID, a progress bar on a terminal, and on SIGINT/SIGTERM leaves it
 * running (machinectl's transfer_signal_handler()), saying how to cancel it.
 */
async function transfer(ctx: CtlContext, opts: CtlOptions, method: string, params: Record<string, unknown>, what: string): Promise<Record<string, unknown>> {
  const bar = progressBar(opts.quiet);
  let id: number | undefined;
  // machinectl's event loop ends with EINTR then, and machinectl fails (status 1)
  const onSignal = () => {
    if (id !== undefined && !opts.quiet) ctx.err(`\nContinuing ${what} in the background. Use "nspawnctl cancel-transfer ${id}" to abort transfer.\n`);
    process.exit(1);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const replies = await ctx.call(method, params, true, (r) => {
      if (typeof r.id === 'number' && id === undefined) {
        id = r.id;
        if (!opts.quiet) ctx.err(`Enqueued transfer job ${id}. Press C-c to continue ${what} in background.\n`);
      }
      if (bar && typeof r.done === 'number') bar(r.done, typeof r.total === 'number' ? r.total : undefined);
    });
    const last = replies[replies.length - 1] ?? {};
    if (bar && typeof last.size === 'number') bar(last.size, last.size);
    return last;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

const verifyMode = (v: CtlOptions['verify']) => (v === 'yes' ? 'checksum' : v);

const pullRaw: Verb = async (args, opts, ctx) => {
  if (args.length < 1 || args.length > 2) ctx.fail('pull-raw needs URL [NAME].');
  const url = args[0]!;
  if (!/^https?:\/\//.test(url)) ctx.fail(`URL '${url}' is not valid.`);
  // machinectl: "-" keeps only the hidden, read-only download (.raw-URL-ETAG); here the image is made directly
  if (args[1] === '-') ctx.fail("pull-raw: '-' as NAME (only the hidden download, as machinectl) is not supported; give NAME.");
  checkName(ctx, args[1]);
  const r = await transfer(ctx, opts, 'io.nspawn.Transfer.PullRaw', { url, ...(args[1] !== undefined ? { name: args[1] } : {}), verify: verifyMode(opts.verify), readOnly: opts.readOnly }, 'download');
  if (!opts.quiet) ctx.err(`Created new image '${String(r.name)}' in ${String(r.path)}.\n`);
  return 0;
};

const importRaw: Verb = async (args, opts, ctx) => {
  if (args.length < 1 || args.length > 2) ctx.fail('import-raw needs FILE [NAME].');
  const file = args[0] === '-' ? '-' : resolve(args[0]!);
  if (file === '-' && args[1] === undefined) ctx.fail('Need an image name when importing from standard input.');
  checkName(ctx, args[1]);
  const r = await transfer(ctx, opts, 'io.nspawn.Transfer.ImportRaw', { file, ...(args[1] !== undefined ? { name: args[1] } : {}), readOnly: opts.readOnly }, 'import');
  if (!opts.quiet) ctx.err(`Imported '${String(r.name)}' into ${String(r.path)}.\n`);
  return 0;
};

const importFs: Verb = async (args, opts, ctx) => {
  if (args.length < 1 || args.length > 2) ctx.fail('import-fs needs DIRECTORY [NAME].');
  checkName(ctx, args[1]);
  const r = await transfer(ctx, opts, 'io.nspawn.Transfer.ImportFs', { directory: resolve(args[0]!), ...(args[1] !== undefined ? { name: args[1] } : {}), readOnly: opts.readOnly }, 'import');
  if (!opts.quiet) ctx.err(`Imported '${String(r.name)}' into ${String(r.path)}.\n`);
  return 0;
};

const exportRaw: Verb = async (args, opts, ctx) => {
  if (args.length < 1 || args.length > 2) ctx.fail('export-raw needs NAME [FILE].');
  checkName(ctx, args[0]);
  const file = args[1] === undefined || args[1] === '-' ? '-' : resolve(args[1]);
  // stdout is the terminal: a bar there would be mixed into the image
  const o = file === '-' ? { ...opts, quiet: true } : opts;
  await transfer(ctx, o, 'io.nspawn.Transfer.ExportRaw', { name: args[0], file, ...(opts.format ? { format: opts.format } : {}) }, 'export');
  if (!opts.quiet && file !== '-') ctx.err(`Exported '${args[0]!}' to ${file}.\n`);
  return 0;
};

interface Transfer {
  id: number;
  type: string;
  remote: string;
  local: string;
  progress: number;
}

/**
 * machinectl 252's list-transfers, its printf() formats: ID right-aligned (at least 2 wide), PERCENT right-aligned
 * in 6 and "%" (or "n/a" in 7), TYPE, LOCAL and REMOTE padded to their widest; "N transfers listed." or
 * "No transfers."
 */
const listTransfers: Verb = async (_args, opts, ctx) => {
  const all = (await ctx.call('io.nspawn.Transfer.List', {}, true)).filter((t) => typeof t.id === 'number') as unknown as Transfer[];
  all.sort((a, b) => a.id - b.id);
  if (opts.output === 'json' || opts.output === 'json-pretty') {
    ctx.out(ctx.json(all, opts));
    return 0;
  }
  const idw = Math.max(2, ...all.map((t) => String(t.id).length));
  const w = (k: 'type' | 'local' | 'remote', head: string) => Math.max(head.length, ...all.map((t) => t[k].length));
  const [tw, lw, rw] = [w('type', 'TYPE'), w('local', 'LOCAL'), w('remote', 'REMOTE')];
  let s = '';
  if (opts.legend && all.length > 0) s += `${'ID'.padEnd(idw)} ${'PERCENT'.padEnd(7)} ${'TYPE'.padEnd(tw)} ${'LOCAL'.padEnd(lw)} ${'REMOTE'.padEnd(rw)}\n`;
  for (const t of all) {
    const pct = t.progress < 0 ? 'n/a'.padStart(7) : `${String(Math.floor(t.progress * 100)).padStart(6)}%`;
    s += `${String(t.id).padStart(idw)} ${pct} ${t.type.padEnd(tw)} ${t.local.padEnd(lw)} ${t.remote.padEnd(rw)}\n`;
  }
  if (opts.legend) s += all.length > 0 ? `\n${all.length} transfers listed.\n` : 'No transfers.\n';
  ctx.out(s);
  return 0;
};

const cancelTransfer: Verb = async (args, _opts, ctx) => {
  if (args.length === 0) ctx.fail('cancel-transfer needs a transfer ID.');
  for (const a of args) {
    if (!/^\d+$/.test(a) || Number(a) > 0xffffffff) ctx.fail(`Failed to parse transfer id: ${a}`);
    try {
      await ctx.call('io.nspawn.Transfer.Cancel', { id: Number(a) });
    } catch (e) {
      ctx.fail(`Could not cancel transfer: ${(e as Error).message}`);
    }
  }
  return 0;
};

/** format_timestamp(): "Sun 2026-12-06 21:04:27 UTC", local time */
function timestamp(usec: number | undefined): string {
  if (!usec) return '';
  const d = new Date(usec / 1000);
  const p = (n: number) => String(n).padStart(2, '0');
  const zone = new Intl.DateTimeFormat('en-US', { timeZoneName: 'short' }).formatToParts(d).find((x) => x.type === 'timeZoneName')?.value ?? '';
  const day = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'][d.getDay()]!;
  return `${day} ${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())} ${zone}`;
}

const U64_MAX = '18446744073709551615';

/**
 * The properties of machined's Image object (or, without NAME, of its Manager's pool) as bus_print_property()
 * prints them: KEY=VALUE, empty ones only with --all, unset sizes as UINT64_MAX and unset limits as "infinity".
 */
export function imageProperties(i: Image, all: boolean): string {
  const num = (v: number | undefined) => (v === undefined || v < 0 ? U64_MAX : String(v));
  const lim = (v: number | undefined) => (v === undefined || v < 0 ? 'infinity' : String(v));
  const props: Array<[string, string]> = [
    ['Name', i.name],
    ['Path', i.path ?? ''],
    ['Type', i.type],
    ['ReadOnly', i.readOnly ? 'yes' : 'no'],
    ['CreationTimestamp', timestamp(i.creationTimestamp)],
    ['ModificationTimestamp', timestamp(i.modificationTimestamp)],
    ['Usage', num(i.usage)],
    ['Limit', lim(i.limit)],
    ['UsageExclusive', num(i.usageExclusive)],
    ['LimitExclusive', lim(i.limitExclusive ?? i.limit)],
  ];
  return props
    .filter(([, v]) => all || v !== '')
    .map(([k, v]) => `${k}=${v}\n`)
    .join('');
}

const showImage: Verb = async (args, opts, ctx) => {
  if (args.length === 0) {
    ctx.out(`PoolPath=${nspawndPaths().images}\nPoolUsage=${U64_MAX}\nPoolLimit=${U64_MAX}\n`);
    return 0;
  }
  for (const n of args) checkName(ctx, n);
  const parts: string[] = [];
  for (const name of args) parts.push(imageProperties((await ctx.call('io.systemd.MachineImage.List', { name }))[0] as unknown as Image, opts.all));
  ctx.out(parts.join('\n'));
  return 0;
};

export const transferVerbs: Record<string, Verb> = {
  'pull-raw': pullRaw,
  'import-raw': importRaw,
  'import-fs': importFs,
  'export-raw': exportRaw,
  'list-transfers': listTransfers,
  'cancel-transfer': cancelTransfer,
  'show-image': showImage,
};
