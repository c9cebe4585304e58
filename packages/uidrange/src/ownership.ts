/**
 * How a container's files meet its range (systemd-nspawn 252: parse_argv()'s defaults, determine_uid_shift(),
 * setup of the idmapped root): pure decisions, so they can be tested without root.
 */
import { UidRangeError } from './candidates.js';

export type Ownership = 'off' | 'chown' | 'map' | 'auto';

export interface OwnershipRequest {
  /** 'pick' (-U, --private-users=pick), 'fixed' (yes, identity, BASE[:COUNT]) */
  mode: 'pick' | 'fixed';
  /** --private-users-ownership= / PrivateUsersOwnership= / --private-users-chown; undefined: systemd's default */
  requested?: Ownership;
  /** the base given by hand (BASE[:COUNT], identity); undefined: read from the directory's owner */
  shift?: number;
  /** the root directory's owner, base-aligned by ownerBase() (only used without `shift`) */
  ownerBase?: number;
  /** for messages */
  directory: string;
  readOnly?: boolean;
  volatile?: boolean;
}

export interface OwnershipDecision {
  /** chown: shift the tree; map: idmapped root, chown if unavailable only when `fallback`; off: nothing */
  ownership: Ownership;
  /** the first candidate (pick) or the base (fixed) */
  shift: number;
  /** 'auto' resolved to map, which falls back to chown where idmapped mounts are not available */
  fallback: boolean;
}

export function resolveOwnership(r: OwnershipRequest): OwnershipDecision {
  // parse_argv(): unset ownership means auto with pick, off otherwise
  let own: Ownership = r.requested ?? (r.mode === 'pick' ? 'auto' : 'off');
  if (own === 'chown' && r.readOnly)
    throw new UidRangeError('--read-only and --private-users-ownership=chown may not be combined.', 'EINVAL');
  if (own === 'chown' && r.volatile)
    throw new UidRangeError('--volatile= and --private-users-ownership=chown may not be combined.', 'EINVAL');
  let shift = r.shift;
  if (shift === undefined) {
    // determine_uid_shift(): the range read off the image; a shifted image is chowned, not mapped
    shift = r.ownerBase ?? 0;
    if (shift !== 0) {
      if (own === 'auto') own = 'chown';
      else if (own === 'map')
        throw new UidRangeError(`UID base of ${r.directory} is not zero, UID mapping not supported.`, 'EINVAL');
    }
  }
  if (own === 'auto') return { ownership: 'map', shift, fallback: true };
  return { ownership: own, shift, fallback: false };
}
