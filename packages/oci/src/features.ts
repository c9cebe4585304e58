/** `nspawn-oci features`: what this runtime supports, in the runtime-spec features.json form. */
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
      seccomp: { enabled: false },
      apparmor: { enabled: false },
      selinux: { enabled: false },
    },
    annotations: { 'org.nspawn.oci.engine': 'nspawn-helper' },
  };
}
