/**
 * `nspawnctl`: machinectl over nspawnd's varlink socket. The dispatcher: parse the command line (ctl-args.ts), pick
 * the verb from its group (ctl-machines, ctl-images, ctl-transfers, ctl-copy, ctl-daemon, ctl-web) and print what fails in one line.
 */
import { machineImageSocketPath, UserError } from '@nspawn/runtime';
import { OptionError } from '@nspawn/settings';
import { parseCtlArgs } from './ctl-args.js';
import { call, CtlError, type CtlVerb, err, json, machine, out, table } from './ctl-common.js';
import { copyVerbs } from './ctl-copy.js';
import { daemonVerbs } from './ctl-daemon.js';
import { execIn } from './ctl-exec.js';
import { CTL_HELP } from './ctl-help.js';
import { imageVerbs, tarVerbs, type Verb } from './ctl-images.js';
import { machineVerbs } from './ctl-machines.js';
import { unitVerbs } from './ctl-units.js';
import { transferVerbs } from './ctl-transfers.js';
import { webVerbs } from './ctl-web.js';
import { fatal } from './fatal.js';

const VERBS: Record<string, CtlVerb> = { ...machineVerbs, ...copyVerbs, ...daemonVerbs, ...webVerbs, ...unitVerbs };

/** The image verbs get what they need through a context (ctl-images.ts stays free of the other modules). */
const imageVerb =
  (v: Verb): CtlVerb =>
  (args, opts) =>
    v(args, opts, {
      call: (m, p, more, onReply) => call(m, p, more, machineImageSocketPath(), onReply),
      out,
      err,
      machine,
      execIn,
      table,
      json,
      fail: (msg) => {
        throw new CtlError(msg);
      },
    });

async function main(argv: string[]): Promise<number> {
  const { verb, args, opts, help, version } = parseCtlArgs(argv);
  if (help) {
    out(CTL_HELP);
    return 0;
  }
  if (version) {
    out('nspawnctl 0.1.0\n');
    return 0;
  }
  if (process.getuid?.() !== 0 && verb !== undefined) {
    // nspawnd answers root only; say so before trying
    throw new CtlError('Need to be root: nspawnd answers only root.');
  }
  const v = verb ?? 'list';
  const run = Object.hasOwn(VERBS, v) ? VERBS[v] : Object.hasOwn(imageVerbs, v) ? imageVerb(imageVerbs[v]!) : Object.hasOwn(tarVerbs, v) ? imageVerb(tarVerbs[v]!) : Object.hasOwn(transferVerbs, v) ? imageVerb(transferVerbs[v]!) : undefined;
  if (!run) throw new CtlError(`Unknown command verb '${v}'.`);
  return run(args, opts);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof OptionError) {
      // getopt's messages, with the program name in front as glibc prints them
      err(`nspawnctl: ${e.message}\n`);
      process.exitCode = 1;
    } else if (e instanceof CtlError || e instanceof UserError || (e instanceof Error && e.name === 'ImportError')) {
      err(`${e.message}\n`);
      process.exitCode = 1;
    } else fatal('nspawnctl', e);
  },
);
