/**
 * What a container sees of the host's PID, IPC and UTS namespaces, for runs side by side with systemd-nspawn 252
 * that share some of them (an OCI bundle's linux.namespaces, --share-system, $SYSTEMD_NSPAWN_SHARE_*): a probe
 * script whose lines do not depend on the host's PIDs or namespace numbers, the lines expected of it, and a guard
 * that fails a test (and puts the hostname back) when a run changed the host's hostname.
 */
import { readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { afterEach, beforeAll, expect } from 'vitest';

/** a namespace a container can share with the host */
export type Own = 'pid' | 'ipc' | 'uts';

/** the host's hostname, from the kernel (os.hostname() is uname()'s) */
export const hostHostname = (): string => readFileSync('/proc/sys/kernel/hostname', 'utf8').trim();

export const NS_KINDS = ['pid', 'ipc', 'uts', 'mnt', 'net', 'cgroup'] as const;
/** the host's namespaces (the test runs in them) */
const hostNs = Object.fromEntries(NS_KINDS.map((k) => [k, readlinkSync(`/proc/self/ns/${k}`)]));

/**
 * The probe (for /bin/sh -c): whether it is PID 1, whether it sees this process, each namespace as the host's or its
 * own, the hostname, what /proc/kmsg is, the /proc and /proc/sys mounts ("mount: " lines); then exit STATUS.
 */
export function namespaceProbe(status = 5): string {
  return [
    'echo "pid 1: $([ $$ = 1 ] && echo yes || echo no)"',
    `echo "host processes: $([ -d /proc/${process.pid} ] && echo visible || echo hidden)"`,
    ...NS_KINDS.map((k) => `echo "ns ${k}: $([ "$(readlink /proc/self/ns/${k})" = "${hostNs[k]}" ] && echo host || echo own)"`),
    'echo "hostname: $(hostname)"',
    'echo "kmsg: $([ -p /proc/kmsg ] && echo fifo || echo other)"',
    'grep -E " /proc(/sys)? " /proc/self/mountinfo | sed -E "s/^[0-9]+ [0-9]+ [0-9:]+ //; s/ (shared|master|propagate_from):[0-9]+//g; s/^/mount: /"',
    `exit ${status}`,
  ].join('\n');
}

/**
 * The probe's lines but the mounts, for a container with namespaces OWN of its own (the others the host's), the
 * cgroup namespace CGROUP, and HOSTNAME set when it has a UTS namespace of its own (the host's is seen otherwise).
 */
export function expectedProbeLines(own: readonly Own[], hostname: string, cgroup: 'own' | 'host' = 'own'): string[] {
  const has = (n: Own) => own.includes(n);
  return [
    `pid 1: ${has('pid') ? 'yes' : 'no'}`,
    `host processes: ${has('pid') ? 'hidden' : 'visible'}`,
    `ns pid: ${has('pid') ? 'own' : 'host'}`,
    `ns ipc: ${has('ipc') ? 'own' : 'host'}`,
    `ns uts: ${has('uts') ? 'own' : 'host'}`,
    'ns mnt: own',
    'ns net: host',
    `ns cgroup: ${cgroup}`,
    `hostname: ${has('uts') ? hostname : hostHostname()}`,
    'kmsg: fifo',
  ];
}

/** the probe's lines without its mounts */
export const withoutMounts = (lines: readonly string[]): string[] => lines.filter((l) => !l.startsWith('mount: '));

/**
 * For the test file that calls it (at its top): after each test, the host's hostname must be the one it had when the
 * file started; a run that changed it (a regression) gets it put back, and the test fails.
 */
export function guardHostHostname(): void {
  let initial = '';
  beforeAll(() => {
    initial = hostHostname();
  });
  afterEach(() => {
    const now = hostHostname();
    if (now !== initial) writeFileSync('/proc/sys/kernel/hostname', initial);
    expect(now, "the host's hostname was changed by a run (put back)").toBe(initial);
  });
}
