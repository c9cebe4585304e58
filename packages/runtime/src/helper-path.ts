import { accessSync, chmodSync, constants, existsSync } from 'node:fs';
import { nativeCandidates } from './native-files.js';

/** Where the helper binary is: $NSPAWN_HELPER, else the first of nativeCandidates('nspawn-helper'). */
export function helperPath(): string {
  const env = process.env.NSPAWN_HELPER;
  if (env) return env;
  const candidates = nativeCandidates('nspawn-helper');
  for (const c of candidates) if (existsSync(c)) return executable(c);
  throw new Error(
    `nspawn-helper not found (looked in ${candidates.join(', ')}); build it with 'pnpm --filter @nspawn/runtime build'`,
  );
}

/** npm and pnpm pack drop the exec bit of files that are not bins: give it back (we run as root). */
function executable(file: string): string {
  try {
    accessSync(file, constants.X_OK);
  } catch {
    try {
      chmodSync(file, 0o755);
    } catch {
      /* spawning it will say why */
    }
  }
  return file;
}
