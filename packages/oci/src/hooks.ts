/**
 * OCI hooks: each runs with the container's state as JSON on stdin, its own args and env, and is killed when its
 * timeout (seconds) passes. A failing hook is an error naming it.
 */
import { spawn } from 'node:child_process';
import type { SpecHook } from './spec.js';

export class HookError extends Error {
  override name = 'HookError';
}

export function runHook(kind: string, hook: SpecHook, state: object): Promise<void> {
  return new Promise((resolveP, reject) => {
    const args = hook.args && hook.args.length > 0 ? hook.args : [hook.path];
    let child;
    try {
      child = spawn(hook.path, args.slice(1), { argv0: args[0], env: Object.fromEntries((hook.env ?? []).map((e) => { const i = e.indexOf('='); return i < 0 ? [e, ''] : [e.slice(0, i), e.slice(i + 1)]; })), stdio: ['pipe', 'ignore', 'pipe'] });
    } catch (e) {
      reject(new HookError(`${kind} hook ${hook.path}: ${(e as Error).message}`));
      return;
    }
    let err = '';
    let timedOut = false;
    const timer = hook.timeout ? setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, hook.timeout * 1000) : undefined;
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { if (err.length < 4096) err += d; });
    child.stdin!.on('error', () => { /* a hook that does not read its state */ });
    child.stdin!.end(JSON.stringify(state));
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      reject(new HookError(`${kind} hook ${hook.path}: ${e.message}`));
    });
    child.on('close', (code, sig) => {
      if (timer) clearTimeout(timer);
      if (timedOut) reject(new HookError(`${kind} hook ${hook.path}: timeout after ${hook.timeout} seconds`));
      else if (code === 0) resolveP();
      else reject(new HookError(`${kind} hook ${hook.path}: ${sig ? `killed by ${sig}` : `exit status ${code}`}${err ? `: ${err.trim()}` : ''}`));
    });
  });
}

/** Runs HOOKS in order; the first failure ends the run. */
export async function runHooks(kind: string, hooks: SpecHook[] | undefined, state: object): Promise<void> {
  for (const h of hooks ?? []) await runHook(kind, h, state);
}
