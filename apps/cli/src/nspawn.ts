/**
 * `nspawn`: systemd-nspawn's command line over @nspawn/settings and @nspawn/assembly. Thin on purpose:
 * parse, merge with the .nspawn file, prepare, run, exit with the container's status.
 */
import { writeSync } from 'node:fs';
import { OptionError, parseCommandLine, SettingsError } from '@nspawn/settings';
import { applySettingsFile, UserError } from '@nspawn/runtime';
import { ContainerError, startContainer } from '@nspawn/assembly';
import { fatal } from './fatal.js';
import { HELP, VERSION } from './help.js';

const say = (fd: number, text: string) => void writeSync(fd, text);

async function main(argv: string[]): Promise<number> {
  // systemd-nspawn's warnings while it parses (--share-system's) are printed at once, before any later error
  const cl = parseCommandLine(argv, { warn: (w) => say(2, `${w}\n`) });
  if (cl.listing) {
    say(1, cl.listing.map((l) => `${l}\n`).join(''));
    return 0;
  }
  if (cl.help) {
    say(1, HELP);
    return 0;
  }
  if (cl.version) {
    say(1, VERSION);
    return 0;
  }
  if (process.getuid?.() !== 0) {
    say(2, 'Need to be root.\n');
    return 1;
  }
  const { settings, messages } = applySettingsFile(cl);
  for (const m of messages) say(2, `${m}\n`);
  // the helper in our place when nothing needs Node after the start (it exits with the container's status)
  return startContainer(settings, { unsupported: cl.unsupported, commandLine: cl.settings });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof OptionError) {
      // getopt's messages, with the program name in front as glibc prints them
      say(2, `nspawn: ${e.message}\n`);
      process.exitCode = 1;
    } else if (e instanceof SettingsError || e instanceof ContainerError || e instanceof UserError) {
      say(2, `${e.message}\n`);
      process.exitCode = 1;
    } else fatal('nspawn', e);
  },
);
