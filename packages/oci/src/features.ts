/** `nspawn-oci features`: what this runtime supports, in the runtime-spec features.json form. */
import { SECCOMP_ACTIONS, SECCOMP_ARCHS, SECCOMP_FLAGS, SECCOMP_OPERATORS } from './seccomp.js';
import { HOOK_NAMES, NAMESPACE_TYPES } from './spec.js';

export function features(): object {
  return {
    ociVersionMin: '1.0.0',
    ociVersionMax: '1.1.0',
    hooks: [...HOOK_NAMES],
    mountOptions: ['bind', 'rbind', 'ro', 'rw', 'nosuid', 'suid', 'nodev', 'dev', 'noexec', 'exec', 'strictatime', 'noatime', 'relatime',
      'private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave', 'unbindable', 'runbindable'],
    linux: {
      namespaces: NAMESPACE_TYPES.filter((n) => n !== 'time'),
      capabilities: [],
      cgroup: { v1: false, v2: false, systemd: false, systemdUser: false },
      seccomp: {
        enabled: true,
        // SCMP_ACT_NOTIFY needs a seccomp agent (listenerPath): not supported
        actions: SECCOMP_ACTIONS.filter((a) => a !== 'SCMP_ACT_NOTIFY'),
        operators: SECCOMP_OPERATORS,
        archs: [...SECCOMP_ARCHS],
        knownFlags: Object.keys(SECCOMP_FLAGS),
        supportedFlags: Object.keys(SECCOMP_FLAGS),
      },
      apparmor: { enabled: false },
      selinux: { enabled: false },
    },
    annotations: { 'org.nspawn.oci.engine': 'nspawn-helper' },
  };
}
