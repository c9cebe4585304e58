/**
 * `nspawnctl`: machinectl over nspawnd's varlink socket. The dispatcher: parse the command line (ctl-args.ts), pick
 * the verb from its group (ctl-machines, ctl-images, ctl-tar, ctl-copy, ctl-daemon, ctl-web, ctl-units) and print
 * what fails in one line. A group's module is imported when one of its verbs runs: `nspawnctl list` initialises
 * neither the tar transfers (@nspawn/import: crypto, zlib, streams) nor the copies or the units.
 */
import { UserError } from '@nspawn/runtime';
import { OptionError } from '@nspawn/settings';
import { parseCtlArgs } from './ctl-args.js';
import { CtlError, err, out } from './ctl-common.js';
import { CTL_HELP } from './ctl-help.js';
import { READ_ONLY_VERBS, VERB_GROUPS } from './ctl-verbs.js';
import { fatal } from './fatal.js';

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
  const v = verb ?? 'list';
  const group = VERB_GROUPS.find(([names]) => names.includes(v));
  if (!group) throw new CtlError(`Unknown command verb '${v}'.`);
  if (process.getuid?.() !== 0 && !READ_ONLY_VERBS.has(v)) {
    // nspawnd lets other users read only (and shell, login, copy and bind enter namespaces); say so before trying
    throw new CtlError(`Need to be root: only ${[...READ_ONLY_VERBS].join(', ')} work for other users.`);
  }
  const run = (await group[1]())[v];
  if (!run) throw new Error(`verb ${v} missing from its module`);
  const code = await run(args, opts);
  // the code cache (bin/load.cjs) of `list`'s path, the one most run: saved once after it ran (a cache written at
  // the exit of another verb, --help say, holds little of it), so that the next starts compile almost nothing
  if (v === 'list' && code === 0) (globalThis as Record<symbol, (() => void) | undefined>)[Symbol.for('nspawn.saveCodeCache')]?.();
  return code;
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
