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

type Stdio = 'ignore' | 'pipe' | number;

/** Node's own synchronous spawner (what child_process.spawnSync() calls), when this Node has it */
interface SpawnSyncBinding {
  spawn(o: object): { status: number | null; output?: Array<Uint8Array | null> | null; error?: number };
}
let binding: SpawnSyncBinding | null | undefined;

/**
 * Runs the tool and waits for it. Loading node:child_process costs milliseconds at a start (it pulls in net and the
 * streams; a plain nspawn start never loads it), so this goes to Node's spawn_sync binding directly, with
 * child_process.spawnSync() as the fallback.
 */
export function runTool(args: string[], stdio: Stdio[] = ['ignore', 'pipe', 'pipe'], env?: NodeJS.ProcessEnv): ToolResult {
  const file = toolPath();
  if (binding === undefined)
    try {
      const b = (process as unknown as { binding(name: string): unknown }).binding('spawn_sync') as SpawnSyncBinding;
      binding = typeof b?.spawn === 'function' ? b : null;
    } catch {
      binding = null;
    }
  if (binding) {
    const r = binding.spawn({
      file,
      args: [file, ...args],
      stdio: stdio.map((s, i) => (s === 'ignore' ? { type: 'ignore' } : s === 'pipe' ? { type: 'pipe', readable: i === 0, writable: i !== 0 } : { type: 'fd', fd: s })),
      maxBuffer: 1 << 20,
      ...(env ? { envPairs: Object.entries(env).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`) } : {}),
    });
    if (r.error === undefined || r.error === 0) {
      const text = (b: Uint8Array | null | undefined) => (b ? Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8') : '');
      return { status: r.status ?? 128 + 9, stdout: text(r.output?.[1]), stderr: text(r.output?.[2]).trim() };
    }
  }
  // loaded on first use, not at start-up
  const { spawnSync } = process.getBuiltinModule('node:child_process');
  const r = spawnSync(file, args, { stdio: stdio as StdioOptions, encoding: 'utf8', ...(env ? { env } : {}) });
  if (r.error) throw r.error;
  return { status: r.status ?? 128 + 9, stdout: r.stdout ?? '', stderr: (r.stderr ?? '').trim() };
}
