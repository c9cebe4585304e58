/** The payload's environment from its parts: the host's os-release as $container_host_*, and systemd's merge. */
import type { HostFacts } from './host.js';

/** The os-release keys systemd-nspawn passes on as $container_host_* (load_os_release_pairs_with_prefix). */
export function containerHostEnv(pairs: Record<string, string> | undefined): string[] {
  if (!pairs) return [];
  const out: string[] = [];
  for (const [k, v] of Object.entries(pairs)) out.push(`container_host_${k.toLowerCase()}=${v}`);
  return out;
}

/** strv_env_merge(): later assignments replace earlier ones with the same name, keeping the first position. */
export function mergeEnv(...lists: string[][]): string[] {
  const order: string[] = [];
  const val = new Map<string, string>();
  for (const l of lists)
    for (const a of l) {
      const i = a.indexOf('=');
      const k = i < 0 ? a : a.slice(0, i);
      if (!val.has(k)) order.push(k);
      val.set(k, a);
    }
  return order.map((k) => val.get(k)!);
}

/** systemd 252 passes only these keys (load_os_release_pairs_with_prefix with the container_host_ prefix). */
const HOST_OS_RELEASE_KEYS = ['ID', 'VERSION_ID', 'BUILD_ID', 'VARIANT_ID', 'IMAGE_ID', 'IMAGE_VERSION'];
export function hostOsReleaseEnvPairs(host: HostFacts): Record<string, string> | undefined {
  if (!host.osRelease) return undefined;
  const out: Record<string, string> = {};
  for (const k of HOST_OS_RELEASE_KEYS) {
    const v = host.osRelease.pairs[k];
    if (v !== undefined) out[k] = v;
  }
  return out;
}
