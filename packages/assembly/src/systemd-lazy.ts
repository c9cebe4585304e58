/**
 * The systemd extension as every start gets it (defaultExtensions()): src/systemd.ts, with @nspawn/machined and its
 * D-Bus client, is loaded by the first start on a systemd host only (nspawn's bundle keeps it in a file of its own,
 * apps/cli/scripts/bundle.mjs): a start elsewhere neither reads nor compiles it.
 */
import type { AttachResult, ContainerExtension } from '@nspawn/runtime';
import type { SystemdExtensionOptions } from './systemd.js';
import { sdBooted } from './systemd-host.js';

/**
 * systemdExtension() (src/systemd.ts) loaded when it is first needed: on a systemd host (OPTS.booted, default
 * sdBooted()), at the setup of a run. Elsewhere it answers needed() and providesCgroup() with false and does nothing.
 */
export function lazySystemdExtension(opts: SystemdExtensionOptions = {}): ContainerExtension {
  const booted = opts.booted ?? sdBooted;
  let isBooted: boolean | undefined;
  const onSystemd = () => (isBooted ??= booted());
  let impl: ContainerExtension | undefined;
  return {
    name: 'systemd',
    needed: () => onSystemd(),
    providesCgroup: () => onSystemd(),
    async setup(run) {
      if (!onSystemd()) return;
      impl ??= (await import('./systemd.js')).systemdExtension({ ...opts, booted: () => true });
      await impl.setup?.(run);
    },
    plan(run, plan) {
      impl?.plan?.(run, plan);
    },
    attach(run, pid): void | AttachResult | Promise<void | AttachResult> {
      return impl?.attach?.(run, pid);
    },
    detach(run) {
      return impl?.detach?.(run);
    },
    teardown(run) {
      return impl?.teardown?.(run);
    },
  };
}
