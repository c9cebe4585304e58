/**
 * What a start gets: the settings made into a prepared container (the runtime's prepareContainer()), the extensions
 * chosen for it (by default defaultExtensions(): run record, storage, user range, network, registration), then the
 * engine: handed over to the helper when nothing needs Node after the start, else supervised in this process.
 */
import type { Settings } from '@nspawn/settings';
import {
  type ContainerExtension,
  handoffContainer,
  type HostFacts,
  nodePrepareEnv,
  nodeTree,
  type PrepareEnv,
  type Prepared,
  prepareContainer,
  runContainer,
  type RunHooks,
  defaultHooks,
  type StdioTriple,
} from '@nspawn/runtime';
import { defaultExtensions } from './extensions.js';
import { isRegisterExtension } from './register.js';
import { sdBooted } from './systemd-host.js';

export interface StartOptions {
  /** the extensions of the start (default: defaultExtensions()) */
  extensions?: readonly ContainerExtension[];
  /** false: no registration with nspawnd (e.g. nspawnd's own containers, which it registers itself) */
  register?: boolean;
  /** extensions added after the chosen ones (e.g. nspawnd's own registration) */
  extra?: readonly ContainerExtension[];
  /** the hooks of the supervised run (log, signals, the helper's spawn) */
  hooks?: RunHooks;
  host?: HostFacts;
  stdio?: StdioTriple;
  /** try to hand the run over to the helper (default true; only when no extension needs Node after the start) */
  handoff?: boolean;
  /** what prepareContainer() sees of the host (default nodePrepareEnv(nodeTree)) */
  env?: PrepareEnv;
  /** options of the command line this build does not support yet (prepareContainer() refuses them) */
  unsupported?: readonly string[];
  /** the settings as given on the command line (default: SETTINGS), for the .nspawn file's precedence */
  commandLine?: Settings;
  /** whether this is a systemd host (default: sdBooted()): --slice= and --property= are allowed there */
  systemdHost?: () => boolean;
}

/** The extensions a start with OPTS gets, in order. */
export function chooseExtensions(opts: Pick<StartOptions, 'extensions' | 'register' | 'extra'> = {}): ContainerExtension[] {
  let xs = [...(opts.extensions ?? defaultExtensions())];
  if (opts.register === false) xs = xs.filter((x) => !isRegisterExtension(x));
  return [...xs, ...(opts.extra ?? [])];
}


/**
 * Prepares SETTINGS for a start (systemd-nspawn's checks and defaults); throws a ContainerError or UserError. On a
 * host without systemd, --slice= and --property= go to the cgroup nspawn makes (src/scope-settings.ts, loaded only
 * when one of them is given; NOTICE gets 252's notices, default: stderr); on a systemd host to the scope systemd makes
 * (src/systemd.ts).
 */
export async function prepareStart(
  settings: Settings,
  opts: Pick<StartOptions, 'env' | 'unsupported' | 'commandLine' | 'systemdHost'> & { notice?: (m: string) => void } = {},
): Promise<Prepared> {
  const prepared = prepareContainer(settings, opts.env ?? nodePrepareEnv(nodeTree), opts.unsupported ?? [], opts.commandLine ?? settings);
  if ((settings.slice !== undefined || settings.properties?.length) && !(opts.systemdHost ?? sdBooted)()) {
    const { applyScopeSettings } = await import('./scope-settings.js');
    applyScopeSettings(prepared, settings, opts.notice ?? ((m) => void process.stderr.write(`${m}\n`)));
  }
  return prepared;
}

/**
 * Runs PREPARED (from prepareStart()) with the extensions OPTS chooses and resolves to the exit status nspawn exits
 * with. Handed over (opts.handoff, the default), the helper replaces this process and this never resolves.
 */
export async function runStart(prepared: Prepared, opts: StartOptions = {}): Promise<number> {
  const extensions = chooseExtensions(opts);
  const hooks = opts.hooks ?? defaultHooks;
  if (opts.handoff !== false) await handoffContainer(prepared, { extensions, hooks, ...(opts.host ? { host: opts.host } : {}) });
  return runContainer(prepared, hooks, opts.host, opts.stdio, extensions);
}

/** startContainer(settings): prepareStart() then runStart(). */
export async function startContainer(settings: Settings, opts: StartOptions = {}): Promise<number> {
  return runStart(await prepareStart(settings, opts), opts);
}
