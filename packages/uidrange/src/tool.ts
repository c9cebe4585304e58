/** Runs native/uidrange-tool (fcntl OFD locks, xattrs and the new mount API: what Node has no call for). */
import type { StdioOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

/** where the tool is: next to the bundle, or in the package's native/build (override: $NSPAWN_UIDRANGE_TOOL) */
export function toolPath(): string {
  if (cached) return cached;
  const env = process.env.NSPAWN_UIDRANGE_TOOL;
  const candidates = env ? [env] : [fileURLToPath(new URL('./uidrange-tool', import.meta.url)), fileURLToPath(new URL('../native/build/uidrange-tool', import.meta.url))];
  for (const c of candidates) if (existsSync(c)) return (cached = c);
  throw new Error(`uidrange-tool not found (looked in ${candidates.join(', ')}); build it with 'pnpm --filter @nspawn/uidrange build'`);
}

export interface ToolResult {
  status: number;
  stdout: string;
  stderr: string;
}

export function runTool(args: string[], stdio: StdioOptions = ['ignore', 'pipe', 'pipe'], env?: NodeJS.ProcessEnv): ToolResult {
  // loaded on first use, not at start-up: most nspawn runs never need child_process (see @nspawn/runtime's hand-over)
  const { spawnSync } = process.getBuiltinModule('node:child_process');
  const r = spawnSync(toolPath(), args, { stdio, encoding: 'utf8', ...(env ? { env } : {}) });
  if (r.error) throw r.error;
  return { status: r.status ?? 128 + 9, stdout: r.stdout ?? '', stderr: (r.stderr ?? '').trim() };
}
