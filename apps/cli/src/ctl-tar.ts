/** nspawnctl's tar transfers (pull-tar, import-tar, export-tar) through @nspawn/import: a module of its own, loaded by these verbs only. */
import { exportTar, importTar, pullTar } from '@nspawn/import';
import { type MachineImageInfo as Image, nspawndPaths } from '@nspawn/runtime';
import { checkImageNames, progressBar, type Verb } from './ctl-images.js';

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
