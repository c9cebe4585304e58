/**
 * `nspawnd`: the machine registry and supervisor (machined and systemd-nspawn@.service in one). Thin: options,
 * then Daemon from ./daemon.ts.
 */
import { writeSync } from 'node:fs';
import { nspawndPaths } from '@nspawn/runtime';
import { getopt, getoptTable, OptionError } from '@nspawn/settings';
import { Daemon } from './daemon.js';
import { defaultImageBackend } from './image-backend.js';
import { parseWebConfig, type WebConfig, webConfigFromEnv } from './web/config.js';

const HELP = `nspawnd [OPTIONS...]

Keeps the registry of running machines and supervises the containers started through it.

  -h --help              Show this help
     --version           Show package version
     --web=[ADDR:]PORT   Serve the web view there (loopback unless told; off by default);
                         \`nspawnctl web\` prints its address with the access token
     --web-cert=FILE     TLS certificate (PEM) for the web view: needed off loopback
     --web-key=FILE      Its private key (PEM)

Environment: NSPAWND_RUNTIME_DIR (sockets and state, /run/nspawn), NSPAWND_CONFIG_DIR (/etc/nspawn),
NSPAWND_LOG_DIR (/var/log/nspawn), NSPAWND_MACHINES_DIR (/var/lib/machines), NSPAWND_WEB,
NSPAWND_WEB_CERT, NSPAWND_WEB_KEY (as --web, --web-cert, --web-key; the options win).
`;

const OPTIONS = [
  { long: 'help', short: 'h', arg: 'none' },
  { long: 'version', arg: 'none' },
  { long: 'web', arg: 'required' },
  { long: 'web-cert', arg: 'required' },
  { long: 'web-key', arg: 'required' },
] as const;

async function main(argv: string[]): Promise<number> {
  let web: string | undefined;
  let cert: string | undefined;
  let key: string | undefined;
  const it = getopt(argv, getoptTable(OPTIONS), 'permute');
  let r = it.next();
  for (; !r.done; r = it.next()) {
    if (r.value.kind !== 'option') continue;
    switch (r.value.option.long) {
      case 'help':
        writeSync(1, HELP);
        return 0;
      case 'version':
        writeSync(1, 'nspawnd 0.1.0\n');
        return 0;
      case 'web':
        web = r.value.value;
        break;
      case 'web-cert':
        cert = r.value.value;
        break;
      case 'web-key':
        key = r.value.value;
        break;
    }
  }
  if (r.value.length > 0) {
    writeSync(2, `nspawnd: unknown argument '${r.value[0]}'\n`);
    return 1;
  }
  let webConfig: WebConfig | undefined;
  if (web !== undefined) webConfig = parseWebConfig(web, { cert: cert ?? process.env.NSPAWND_WEB_CERT, key: key ?? process.env.NSPAWND_WEB_KEY });
  else if (cert !== undefined || key !== undefined) throw new OptionError(`${cert !== undefined ? '--web-cert' : '--web-key'} needs --web=ADDR:PORT`, '--web');
  else webConfig = webConfigFromEnv();
  if (process.getuid?.() !== 0) {
    writeSync(2, 'nspawnd: need to be root\n');
    return 1;
  }
  const paths = nspawndPaths();
  const d = new Daemon({ paths, images: defaultImageBackend(paths.images), ...(webConfig ? { web: webConfig } : {}) });
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
