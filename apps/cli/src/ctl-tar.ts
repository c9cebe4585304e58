/** nspawnctl's tar transfers (pull-tar, import-tar, export-tar) through @nspawn/import: a module of its own, loaded by these verbs only. */
import { exportTar, importTar, pullTar, type ProgressFn } from '@nspawn/import';
import { type MachineImageInfo as Image, nspawndPaths } from '@nspawn/runtime';
import { checkImageNames, formatBytes, type Verb } from './ctl-images.js';

/** A progress bar on a terminal (stderr), nothing elsewhere. */
function progressBar(quiet: boolean): ProgressFn | undefined {
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
    verify: opts.verify !== 'no',
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
