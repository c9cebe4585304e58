/** `nspawnctl clean`: what killed runs left on the host (@nspawn/assembly), then hidden (or all) images. */
import { collectLeftovers } from '@nspawn/assembly';
import { cleanImages } from '@nspawn/btrfs';
import { isNoDaemon, machineImageSocketPath, nspawndPaths, varlinkCall } from '@nspawn/runtime';
import type { Verb } from './ctl-images.js';

export const clean: Verb = async (_args, opts, ctx) => {
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

