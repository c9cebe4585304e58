/**
 * The one lifecycle of a start, whichever way it waits:
 *
 *   setup → (per boot: plan → start → attach → wait → detach) → teardown
 *
 * runLifecycle() owns the order: the kernel's limits checked before anything is made, each extension's setup() in
 * order (a hand-over runs only those that ask for it: setupBeforeHandoff), "Spawning container ...", the boots, and
 * teardown() in reverse order on every path (also when a setup() threw). The boots are the waiter's:
 * - supervised (run.ts): the helper as our child, attach() at its sync point, detach() after each boot, reboots;
 * - handed over (handoff.ts): the helper execve()d in our place with the plan; it never returns (native/handoff.c
 *   waits and removes the scope), so what follows runs only when the exec failed.
 * It stays synchronous as long as nothing it calls returns a promise (the hand-over's start path awaits nothing).
 */
import type { HostFacts } from './host.js';
import { buildEnvironment, buildRlimits } from './plan.js';
import type { Prepared } from './prepare.js';
import { ContainerError } from './errors.js';
import { kernelLimitError } from './limits.js';
import type { ContainerExtension, ContainerRun } from './extension-api.js';
import { spawningMessage } from './boot.js';
import type { RunHooks } from './hooks.js';

type MaybePromise<T> = T | Promise<T>;

/** How a start waits for its container. */
export interface Waiter {
  /** handed over: only the extensions with setupBeforeHandoff are set up, and run.handoff is true */
  readonly handoff: boolean;
  /** the boots (plan → start → attach → wait → detach) to the exit status nspawn exits with */
  boots(p: Prepared, run: ContainerRun, extensions: readonly ContainerExtension[], host: HostFacts, hooks: RunHooks): MaybePromise<number>;
}

/** FN on each of ITEMS in order, synchronously until one returns a promise */
function inOrder<T>(items: readonly T[], fn: (x: T) => MaybePromise<void>, from = 0): MaybePromise<void> {
  for (let i = from; i < items.length; i++) {
    const r = fn(items[i]!);
    if (r instanceof Promise) return r.then(() => inOrder(items, fn, i + 1));
  }
}

/** Runs the start of P with EXTENSIONS and the boots of WAITER (see above); resolves to the exit status. */
export function runLifecycle(p: Prepared, extensions: readonly ContainerExtension[], hooks: RunHooks, host: HostFacts, waiter: Waiter): MaybePromise<number> {
  const cfg = p.config;
  const run: ContainerRun = waiter.handoff ? { cfg, log: (l) => hooks.log(l), handoff: true } : { cfg, log: (l) => hooks.log(l) };
  // what the kernel would refuse halfway is refused before any extension makes anything (-x's snapshot, a lock)
  const limit = kernelLimitError(cfg, buildEnvironment(cfg, host), buildRlimits(cfg, host));
  if (limit !== undefined) throw new ContainerError(limit);
  const setups = waiter.handoff ? extensions.filter((x) => x.setupBeforeHandoff) : extensions;
  const started: ContainerExtension[] = [];
  const teardown = (): MaybePromise<void> =>
    inOrder([...started].reverse(), (x) => {
      const said = (e: unknown) => hooks.log(`${x.name}: ${(e as Error).message}`);
      try {
        const r = x.teardown?.(run);
        if (r instanceof Promise) return r.catch(said);
      } catch (e) {
        said(e);
      }
    });
  const finish = (end: { code: number } | { error: unknown }): MaybePromise<number> => {
    const result = (): number => {
      if ('error' in end) throw end.error;
      return end.code;
    };
    const t = teardown();
    return t instanceof Promise ? t.then(result) : result();
  };
  const boots = (): MaybePromise<number> => {
    let r: MaybePromise<number>;
    try {
      if (!p.quiet) hooks.log(spawningMessage(cfg));
      r = waiter.boots(p, run, extensions, host, hooks);
    } catch (error) {
      return finish({ error });
    }
    return r instanceof Promise ? r.then((code) => finish({ code }), (error: unknown) => finish({ error })) : finish({ code: r });
  };
  let setup: MaybePromise<void>;
  try {
    setup = inOrder(setups, (x) => {
      started.push(x);
      return x.setup?.(run);
    });
  } catch (error) {
    return finish({ error });
  }
  return setup instanceof Promise ? setup.then(boots, (error: unknown) => finish({ error })) : boots();
}
