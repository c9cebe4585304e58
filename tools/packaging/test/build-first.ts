// The checks pack what the packages built: build the workspace first (turbo: cached, quick when built).
import { execFileSync } from 'node:child_process';
import { ROOT } from '../lib/workspace.mjs';

export default function setup() {
  execFileSync('pnpm', ['exec', 'turbo', 'run', 'build', '--output-logs=errors-only', '--filter=!@nspawn/packaging'], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}
