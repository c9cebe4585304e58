/** nspawnctl's image verbs over io.systemd.MachineImage, and the tar transfers (@nspawn/import). */
import { exportTar, importTar, pullTar, type ProgressFn } from '@nspawn/import';
import { cleanImages } from '@nspawn/btrfs';
import { collectLeftovers } from '@nspawn/assembly';
import { isNoDaemon, type MachineImageInfo as Image, type MachineInfo, machineImageSocketPath, nspawndPaths, varlinkCall } from '@nspawn/runtime';
import { imageNameIsValid } from '@nspawn/settings';
import type { CtlOptions } from './ctl-common.js';

export interface CtlContext {
  call(method: string, params: Record<string, unknown>, more?: boolean, onReply?: (reply: Record<string, unknown>) => void): Promise<Record<string, unknown>[]>;
  out(text: string): void;
  err(text: string): void;
  machine(name: string): Promise<MachineInfo>;
  execIn(m: MachineInfo, user: string, cmd: string[] | undefined, env: string[]): Promise<number>;
  table(cols: string[], rows: string[][], opts: CtlOptions, footer: string): string;
  json(v: unknown, opts: CtlOptions): string;
  fail(message: string): never;
}

export type Verb = (args: string[], opts: CtlOptions, ctx: CtlContext) => Promise<number>;

export function formatBytes(n: number | undefined): string {
  if (n === undefined) return '-';
  const units = ['B', 'K', 'M', 'G', 'T'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v}B` : `${v.toFixed(1)}${units[i]}`;
}

/**
 * NAMES are image names (image_name_is_valid(), the rule nspawnd and the store apply too): ".", "..", "a/b", ""
 * and the like are refused here with machined's message, before anything is asked or touched.
 */
function checkImageNames(ctx: CtlContext, ...names: Array<string | undefined>): void {
  for (const n of names) {
    if (n === undefined || imageNameIsValid(n)) continue;
    // eslint-disable-next-line no-control-regex
    const shown = n.replace(/[\x00-\x1f\x7f\\']/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
    ctx.fail(`Image name '${shown.length > 300 ? `${shown.slice(0, 300)}...` : shown}' is invalid.`);
  }
}

const time = (usec: number | undefined) => (usec ? new Date(usec / 1000).toUTCString() : '-');

/** "10G", "512M", "1024", "-" / "infinity" (no limit: -1) */
export function parseBytes(s: string): number | undefined {
  if (s === '-' || s === 'infinity') return -1;
  const m = /^(\d+(?:\.\d+)?)\s*([KMGTPE]?)(i?B)?$/i.exec(s);
  if (!m) return undefined;
  const exp = ' KMGTPE'.indexOf((m[2] || ' ').toUpperCase());
  return Math.round(Number(m[1]) * 1024 ** exp);
}

const listImages: Verb = async (_args, opts, ctx) => {
  let imgs: Image[] = [];
  try {
    imgs = (await ctx.call('io.systemd.MachineImage.List', {}, true)) as unknown as Image[];
  } catch (e) {
    if (!/No images/.test((e as Error).message)) throw e;
  }
  if (!opts.all) imgs = imgs.filter((i) => !i.name.startsWith('.'));
  const rows = imgs.map((i) => ({
    name: i.name,
    type: i.type,
    ro: i.readOnly,
    usage: i.usage ?? null,
    created: i.creationTimestamp ?? null,
    modified: i.modificationTimestamp ?? null,
  }));
  if (opts.output === 'json' || opts.output === 'json-pretty') ctx.out(ctx.json(rows, opts));
  else
    ctx.out(
      ctx.table(
        ['NAME', 'TYPE', 'RO', 'USAGE', 'CREATED', 'MODIFIED'],
        imgs.map((i) => [i.name, i.type, i.readOnly ? 'yes' : 'no', formatBytes(i.usage), time(i.creationTimestamp), time(i.modificationTimestamp)]),
        opts,
        `${imgs.length} images listed.`,
      ),
    );
  return 0;
};

const imageStatus: Verb = async (args, opts, ctx) => {
  if (args.length === 0) ctx.fail('image-status needs an image name.');
  checkImageNames(ctx, ...args);
  const all: Image[] = [];
  for (const name of args) all.push((await ctx.call('io.systemd.MachineImage.List', { name }))[0] as unknown as Image);
  if (opts.output === 'json' || opts.output === 'json-pretty') {
    ctx.out(ctx.json(all.length === 1 ? all[0] : all, opts));
    return 0;
  }
  ctx.out(
    all
      .map((i) => {
        const f = (k: string, v: string | undefined) => (v === undefined ? '' : `${k.padStart(10)}: ${v}\n`);
        const os = i.OSRelease?.find((l) => l.startsWith('PRETTY_NAME='))?.slice(12);
        return (
          `${i.name}\n` +
          f('Path', i.path) +
          f('Hostname', i.hostname) +
          f('Machine ID', i.machineId) +
          f('OS', os) +
          f('RO', i.readOnly ? 'read-only' : 'writable') +
          f('Type', i.type) +
          f('Usage', i.usage === undefined ? undefined : formatBytes(i.usage)) +
          f('Limit', i.limit === undefined ? undefined : formatBytes(i.limit)) +
          f('Created', time(i.creationTimestamp)) +
          f('Modified', time(i.modificationTimestamp))
        );
      })
      .join('\n'),
  );
  return 0;
};

const clone: Verb = async (args, opts, ctx) => {
  if (args.length !== 2) ctx.fail('clone needs an image name and a new name.');
  checkImageNames(ctx, ...args);
  await ctx.call('io.systemd.MachineImage.Clone', { name: args[0], newName: args[1], readOnly: opts.readOnly });
  return 0;
};

const rename: Verb = async (args, _opts, ctx) => {
  if (args.length !== 2) ctx.fail('rename needs an image name and a new name.');
  checkImageNames(ctx, ...args);
  await ctx.call('io.systemd.MachineImage.Update', { name: args[0], newName: args[1] });
  return 0;
};

const readOnly: Verb = async (args, _opts, ctx) => {
  if (args.length < 1 || args.length > 2) ctx.fail('read-only needs an image name and optionally a boolean.');
  checkImageNames(ctx, args[0]);
  let ro = true;
  if (args[1] !== undefined) {
    const v = args[1].toLowerCase();
    if (['1', 'yes', 'y', 'true', 't', 'on'].includes(v)) ro = true;
    else if (['0', 'no', 'n', 'false', 'f', 'off'].includes(v)) ro = false;
    else ctx.fail(`Failed to parse read-only boolean: ${args[1]}`);
  }
  await ctx.call('io.systemd.MachineImage.Update', { name: args[0], readOnly: ro });
  return 0;
};

const remove: Verb = async (args, _opts, ctx) => {
  if (args.length === 0) ctx.fail('remove needs an image name.');
  checkImageNames(ctx, ...args);
  for (const name of args) await ctx.call('io.systemd.MachineImage.Remove', { name });
  return 0;
};

const setLimit: Verb = async (args, _opts, ctx) => {
  if (args.length < 1 || args.length > 2) ctx.fail('set-limit needs [NAME] BYTES.');
  if (args.length === 2) checkImageNames(ctx, args[0]);
  const bytes = parseBytes(args[args.length - 1]!);
  if (bytes === undefined) ctx.fail(`Failed to parse size: ${args[args.length - 1]}`);
  if (args.length === 2) await ctx.call('io.systemd.MachineImage.Update', { name: args[0], limit: bytes });
  else await ctx.call('io.systemd.MachineImage.SetPoolLimit', { limit: bytes });
  return 0;
};

const clean: Verb = async (_args, opts, ctx) => {
  // first what runs that are gone (kill -9) left on the host: scopes, snapshots, locks, network (run records)
  let failed = false;
  for (const c of await collectLeftovers()) {
    if (!opts.quiet && c.removed.length > 0) ctx.out(`Removed ${c.removed.join(', ')}${c.machine ? ` left behind by machine '${c.machine}'` : ''}.\n`);
    for (const l of c.left) ctx.err(`Could not remove what machine '${c.machine}' left behind: ${l}\n`);
    failed ||= c.left.length > 0;
  }
  // then the images, through nspawnd when it runs (else here: the image locks keep running ones)
  const mode = opts.all ? 'all' : 'hidden';
  const daemon = await varlinkCall(machineImageSocketPath(), 'org.varlink.service.GetInfo', {}).then(
    () => true,
    (e: unknown) => !isNoDaemon(e),
  );
  const names = daemon
    ? (await ctx.call('io.systemd.MachineImage.CleanPool', { mode }, true)).map((g) => g.name).filter((n): n is string => typeof n === 'string')
    : cleanImages({ root: nspawndPaths().images, all: opts.all });
  if (!opts.quiet) for (const n of names) ctx.out(`Removed image '${n}'.\n`);
  return failed ? 1 : 0;
};

export const imageVerbs: Record<string, Verb> = {
  'list-images': listImages,
  'image-status': imageStatus,
  clone,
  rename,
  'read-only': readOnly,
  remove,
  'set-limit': setLimit,
  clean,
};

/** A progress bar on a terminal (stderr), nothing elsewhere. */
export function progressBar(quiet: boolean): ProgressFn | undefined {
  if (quiet || !process.stderr.isTTY) return undefined;
  let last = 0;
  return (done, total) => {
    const now = Date.now();
    if (now - last < 100 && done !== total) return;
    last = now;
    const width = 30;
    if (total) {
      const f = Math.min(1, done / total);
      const bar = '#'.repeat(Math.round(f * width)).padEnd(width, '.');
      process.stderr.write(`\r[${bar}] ${(f * 100).toFixed(0).padStart(3)}% ${formatBytes(done)}/${formatBytes(total)}`);
    } else process.stderr.write(`\r${formatBytes(done)} downloaded`);
    if (done === total) process.stderr.write('\n');
  };
}

const pull: Verb = async (args, opts, ctx) => {
  if (args.length < 1 || args.length > 2) ctx.fail('pull-tar needs URL [NAME].');
  checkImageNames(ctx, args[1]);
  const progress = progressBar(opts.quiet);
  const r = await pullTar(args[0]!, {
    ...(args[1] !== undefined ? { name: args[1] } : {}),
    root: nspawndPaths().images,
    verify: opts.verify === 'signature' ? 'signature' : opts.verify !== 'no',
    ...(progress ? { progress } : {}),
    log: (l) => {
      if (!opts.quiet) ctx.err(`${l}\n`);
    },
  });
  if (!opts.quiet) ctx.err(`Created new image '${r.name}' in ${r.path}.\n`);
  return 0;
};

const importVerb: Verb = async (args, opts, ctx) => {
  if (args.length < 1 || args.length > 2) ctx.fail('import-tar needs FILE [NAME].');
  checkImageNames(ctx, args[1]);
  const r = await importTar(args[0]!, { ...(args[1] !== undefined ? { name: args[1] } : {}), root: nspawndPaths().images });
  if (!opts.quiet) ctx.err(`Imported '${r.name}' into ${r.path}.\n`);
  return 0;
};

const exportVerb: Verb = async (args, opts, ctx) => {
  if (args.length < 1 || args.length > 2) ctx.fail('export-tar needs NAME [FILE].');
  checkImageNames(ctx, args[0]);
  const img = (await ctx.call('io.systemd.MachineImage.List', { name: args[0] }))[0] as unknown as Image;
  await exportTar(img.path!, args[1] ?? '-');
  if (!opts.quiet && args[1] !== undefined) ctx.err(`Exported '${img.name}' to ${args[1]}.\n`);
  return 0;
};

export const tarVerbs: Record<string, Verb> = { 'pull-tar': pull, 'import-tar': importVerb, 'export-tar': exportVerb };
