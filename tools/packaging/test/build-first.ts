// The checks pack what the packages built: build the workspace first (turbo, cached: quick when built), through
// scripts/turbo.mjs so that the cache key has this machine's toolchains (a build made before the arm64 cross
// compiler was installed is not reused).
import { execa } from 'execa';
import { ROOT } from '../lib/workspace.mjs';

export default async function setup() {
  await execa(process.execPath, ['scripts/turbo.mjs', 'run', 'build', '--output-logs=errors-only', '--filter=!@nspawn/packaging'], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}
