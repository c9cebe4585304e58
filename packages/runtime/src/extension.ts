/**
 * Container extensions: the pieces of a start that live outside the helper's plan (a uid range and its lock, an
 * ephemeral snapshot, network links, registration with nspawnd). runContainer() calls them in order around
 * each boot and in reverse order when tearing down, on every exit path.
 */
import type { ContainerExtension } from './extension-api.js';
import { registerExtension } from './register.js';
import { storageExtension } from './storage.js';
import { privateUsersExtension } from './private-users.js';
import { networkExtension } from './network.js';
import { recoveryExtension } from './recovery.js';

/** The extensions every `nspawn` start uses, in order. */
export function defaultExtensions(): ContainerExtension[] {
  // the run record first (what the others make is noted in it before it is made: src/recovery.ts), then storage (it
  // may put the run on a snapshot), then the range for that tree, then the network
  return [recoveryExtension(), storageExtension(), privateUsersExtension(), networkExtension(), registerExtension()];
}
