/**
 * What the nspawn-oci runtime tests share: the front end's path, the environment they run it in, and a busybox
 * bundle (rootfs + `nspawn-oci spec`'s config.json, its process set by the caller) under a fresh temp dir with a
 * --root state dir beside it.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { makeTempDir, REPO } from './containers.js';

export const NSPAWN_OCI = join(REPO, 'apps/cli/bin/nspawn-oci');
export const OCI_ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };

export interface BusyboxBundle {
  /** the temp dir (remove() it in afterAll: it returns the mounts still under it, expected none) */
  base: ReturnType<typeof makeTempDir>;
  bundle: string;
  /** an empty dir for --root */
  state: string;
}

/** Throws (never skips) without root. ARGS: the process's args (terminal off); none: spec's default. */
export async function busyboxBundle(prefix: string, args?: string[]): Promise<BusyboxBundle> {
  if (process.getuid?.() !== 0) throw new Error(`${prefix}: needs root`);
  const base = makeTempDir(prefix);
  const bundle = join(base.dir, 'bundle');
  const state = join(base.dir, 'state');
  mkdirSync(state);
  await execa(join(REPO, 'scripts/make-busybox-tree.sh'), [join(bundle, 'rootfs')], { stdout: 'ignore' });
  await execa(NSPAWN_OCI, ['spec', '-b', bundle], { env: OCI_ENV });
  if (args) setProcess(bundle, args);
  return { base, bundle, state };
}

/** Rewrites BUNDLE's config.json with process.args = ARGS and process.terminal = TERMINAL. */
export function setProcess(bundle: string, args: string[], terminal = false): void {
  const spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
  spec.process.terminal = terminal;
  spec.process.args = args;
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec, null, 2));
}
