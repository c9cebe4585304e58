/**
 * `nspawn`: systemd-nspawn's command line over @nspawn/settings and @nspawn/runtime. Thin on purpose:
 * parse, merge with the .nspawn file, prepare, run, exit with the container's status.
 */
import { parseCommandLine, SettingsError } from '@nspawn/settings';
import { ContainerError, UserError, nodePrepareEnv, nodeTree, prepareContainer, runContainer } from '@nspawn/runtime';
import { HELP, VERSION } from './help.js';

async function main(argv: string[]): Promise<number> {
  const cl = parseCommandLine(argv);
  if (cl.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (cl.version) {
    process.stdout.write(VERSION);
    return 0;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('Need to be root.\n');
    return 1;
  }
  const prepared = prepareContainer(cl.settings, nodePrepareEnv(nodeTree), cl.unsupported);
  return runContainer(prepared);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof SettingsError || e instanceof ContainerError || e instanceof UserError) {
      process.stderr.write(`${e.message}\n`);
      process.exitCode = 1;
    } else throw e;
  },
);
