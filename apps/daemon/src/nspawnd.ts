/**
 * `nspawnd`: the machine registry and supervisor (machined and systemd-nspawn@.service in one). Thin: options,
 * then Daemon from ./daemon.ts.
 */
import { writeSync } from 'node:fs';
import { nspawndPaths } from '@nspawn/runtime';
import { Daemon } from './daemon.js';
import { defaultImageBackend } from './image-backend.js';

const HELP = `nspawnd [OPTIONS...]

Keeps the registry of running machines and supervises the containers started through it.

  -h --help       Show this help
     --version    Show package version

Environment: NSPAWND_RUNTIME_DIR (sockets and state, /run/nspawn), NSPAWND_CONFIG_DIR (/etc/nspawn),
NSPAWND_LOG_DIR (/var/log/nspawn), NSPAWND_MACHINES_DIR (/var/lib/machines).
`;

async function main(argv: string[]): Promise<number> {
  if (argv.includes('-h') || argv.includes('--help')) {
    writeSync(1, HELP);
    return 0;
  }
  if (argv.includes('--version')) {
    writeSync(1, 'nspawnd 0.1.0\n');
    return 0;
  }
  if (argv.length > 0) {
    writeSync(2, `nspawnd: unknown argument '${argv[0]}'\n`);
    return 1;
  }
  if (process.getuid?.() !== 0) {
    writeSync(2, 'nspawnd: need to be root\n');
    return 1;
  }
  const paths = nspawndPaths();
  const d = new Daemon({ paths, images: defaultImageBackend(paths.images) });
  await d.start();
  writeSync(2, `nspawnd: listening on ${paths.runtime}\n`);
  const stop = () => {
    void d.stop().then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  return new Promise<number>(() => {});
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    writeSync(2, `nspawnd: ${(e as Error).message}\n`);
    process.exitCode = 1;
  },
);
