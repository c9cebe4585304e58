/**
 * The concrete container extensions of a start (run record, storage, user range, network, registration) and their
 * order. The engine (@nspawn/runtime) calls whatever extensions it is given; this package decides which.
 */
import type { ContainerExtension } from '@nspawn/runtime';
import { registerExtension } from './register.js';
import { storageExtension } from './storage.js';
import { privateUsersExtension } from './private-users.js';
import { networkExtension } from './network.js';
import { recoveryExtension } from './recovery.js';
import { lazySystemdExtension } from './systemd-lazy.js';

/** The extensions every `nspawn` start uses, in order. */
export function defaultExtensions(): ContainerExtension[] {
  // the run record first (what the others make is noted in it before it is made: src/recovery.ts), then storage (it
  // may put the run on a snapshot), then the range for that tree, then the network; on a systemd host machined and
  // systemd's scope (after the network: machined is told the host-side link), then nspawnd (not told when machined was)
  return [recoveryExtension(), storageExtension(), privateUsersExtension(), networkExtension(), lazySystemdExtension(), registerExtension()];
}
