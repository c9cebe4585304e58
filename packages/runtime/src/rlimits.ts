/** The payload's resource limits (plan.ts's buildRlimits(), for the helper's setrlimit() calls). */
import { type Rlimit, type RlimitName, RLIMIT_NUMBERS } from '@nspawn/settings';
import type { HostFacts } from './host.js';
import type { HelperRlimit } from './protocol.js';

/** The default rlimits systemd-nspawn gives the payload (initialize_rlimits), with the user's on top. */
export function buildRlimits(cfg: { rlimits: Partial<Record<RlimitName, Rlimit>> }, host: Pick<HostFacts, 'nrOpen' | 'pid1Limits'>): HelperRlimit[] {
  const INF = 'infinity' as const;
  const defaults: Partial<Record<RlimitName, [bigint | 'infinity', bigint | 'infinity']>> = {
    AS: [INF, INF],
    CORE: [0n, INF],
    CPU: [INF, INF],
    DATA: [INF, INF],
    FSIZE: [INF, INF],
    LOCKS: [INF, INF],
    MEMLOCK: [8388608n, 8388608n],
    MSGQUEUE: [819200n, 819200n],
    NICE: [0n, 0n],
    NOFILE: [1024n, BigInt(Math.min(host.nrOpen, 512 * 1024))],
    RSS: [INF, INF],
    RTPRIO: [0n, 0n],
    RTTIME: [INF, INF],
    STACK: [8388608n, INF],
  };
  const conv = (x: string): bigint | 'infinity' => (x === 'infinity' ? INF : BigInt(x));
  if (host.pid1Limits.NPROC) defaults.NPROC = [conv(host.pid1Limits.NPROC[0]), conv(host.pid1Limits.NPROC[1])];
  if (host.pid1Limits.SIGPENDING)
    defaults.SIGPENDING = [conv(host.pid1Limits.SIGPENDING[0]), conv(host.pid1Limits.SIGPENDING[1])];
  const out: HelperRlimit[] = [];
  for (const [name, num] of Object.entries(RLIMIT_NUMBERS) as [RlimitName, number][]) {
    const user = cfg.rlimits[name];
    const d = defaults[name];
    if (user) out.push({ resource: num, soft: user.soft, hard: user.hard });
    else if (d) out.push({ resource: num, soft: d[0], hard: d[1] });
  }
  return out;
}
