/**
 * `nspawnctl web`: the address of nspawnd's web view with its access token, one line, for the user to open (no
 * browser is started). nspawnd writes both into a root-only file of its runtime directory when it serves the view
 * (`nspawnd --web=ADDR:PORT`).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { nspawndPaths } from '@nspawn/runtime';
import { call, CtlError, type CtlVerb, out } from './ctl-common.js';

/** apps/daemon/src/web/config.ts: WEB_ACCESS_FILE */
const ACCESS_FILE = 'web-access.json';

const web: CtlVerb = async (args) => {
  if (args.length > 0) throw new CtlError('web takes no arguments.');
  // nspawnd must be running (a file left by one killed with -9 is no address to give)
  await call('org.varlink.service.GetInfo', {});
  const file = join(nspawndPaths().runtime, ACCESS_FILE);
  let access: { url?: unknown; token?: unknown };
  try {
    access = JSON.parse(readFileSync(file, 'utf8')) as typeof access;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new CtlError('nspawnd does not serve the web view: start it with --web=ADDR:PORT (or NSPAWND_WEB=ADDR:PORT).');
    throw new CtlError(`Cannot read ${file}: ${(e as Error).message}`);
  }
  if (typeof access.url !== 'string' || typeof access.token !== 'string') throw new CtlError(`${file} is damaged: restart nspawnd.`);
  out(`${access.url}?token=${encodeURIComponent(access.token)}\n`);
  return 0;
};

export const webVerbs: Record<string, CtlVerb> = { web };
