/**
 * Image policies (`--image-policy=`): which partitions an image may have and how they must be protected. systemd 252
 * has none; this is systemd 254's grammar and checks (src/shared/image-policy.c, dissect_image()), applied to what
 * this package can use (no Verity, no LUKS: such partitions are refused before any policy anyway):
 *
 *     root=unprotected+read-only-on:usr=absent:home=ignore:=absent      "-" ignore all, "*" allow all, "~" deny all
 *
 * Flags: verity, signed, encrypted, unprotected, unused, absent (open = all six, ignore = unused+absent), and
 * read-only-on/off, growfs-on/off on the GPT flags. A designator without a rule gets the default (`=...`), which
 * is "ignore" when the policy names any partition. Pure.
 */
import type { Designator, DissectedImage } from './dissect.js';
import { ImageError } from './errors.js';
import { GPT_FLAG_GROWFS, GPT_FLAG_READ_ONLY } from './partition-types.js';

const VERITY = 1;
const SIGNED = 2;
const ENCRYPTED = 4;
const UNPROTECTED = 8;
const UNUSED = 16;
const ABSENT = 32;
const OPEN = VERITY | SIGNED | ENCRYPTED | UNPROTECTED | UNUSED | ABSENT;
const IGNORE = UNUSED | ABSENT;
const USE_MASK = OPEN;
const RO_OFF = 64;
const RO_ON = 128;
const RO_MASK = RO_OFF | RO_ON;
const GROWFS_OFF = 256;
const GROWFS_ON = 512;
const GROWFS_MASK = GROWFS_OFF | GROWFS_ON;
const PFLAGS_MASK = RO_MASK | GROWFS_MASK;

const FLAG_NAMES: ReadonlyArray<readonly [string, number]> = [
  ['verity', VERITY],
  ['signed', SIGNED],
  ['encrypted', ENCRYPTED],
  ['unprotected', UNPROTECTED],
  ['unused', UNUSED],
  ['absent', ABSENT],
  ['read-only-on', RO_ON],
  ['read-only-off', RO_OFF],
  ['growfs-on', GROWFS_ON],
  ['growfs-off', GROWFS_OFF],
];

/** Every designator, in systemd's order. */
export const DESIGNATORS: readonly Designator[] = [
  'root', 'root-secondary', 'root-other', 'usr', 'usr-secondary', 'usr-other', 'home', 'srv', 'esp', 'xbootldr', 'swap',
  'root-verity', 'root-secondary-verity', 'root-other-verity', 'usr-verity', 'usr-secondary-verity', 'usr-other-verity',
  'root-verity-sig', 'root-secondary-verity-sig', 'root-other-verity-sig', 'usr-verity-sig', 'usr-secondary-verity-sig',
  'usr-other-verity-sig', 'tmp', 'var',
];

/** A parsed image policy: flags per designator and a default. */
export interface ImagePolicy {
  readonly defaultFlags: number;
  readonly policies: ReadonlyMap<Designator, number>;
}

const DATA_DESIGNATORS = new Set<Designator>(['root', 'root-secondary', 'root-other', 'usr', 'usr-secondary', 'usr-other']);
const verityToData = (d: Designator): Designator | undefined => (d.endsWith('-verity') ? (d.slice(0, -7) as Designator) : undefined);
const sigToData = (d: Designator): Designator | undefined => (d.endsWith('-verity-sig') ? (d.slice(0, -11) as Designator) : undefined);

function flagsFromString(s: string, what: string): number {
  const t = s.trim();
  if (t === '' || t === '-') return 0;
  let flags = 0;
  for (const word of t.split('+')) {
    const w = word.trim();
    const f = w === 'open' ? OPEN : w === 'ignore' ? IGNORE : FLAG_NAMES.find(([n]) => n === w)?.[1];
    if (f === undefined) throw new Error(`Unknown partition policy flag in image policy: ${what}`);
    flags |= f;
  }
  return flags;
}

/** Parses an image policy string (systemd 254's image_policy_from_string()); throws an Error with systemd's message. */
export function parseImagePolicy(s: string): ImagePolicy {
  const t = s.trim();
  if (t === '' || t === '-') return { defaultFlags: IGNORE, policies: new Map() };
  if (t === '*') return { defaultFlags: OPEN, policies: new Map() };
  if (t === '~') return { defaultFlags: ABSENT, policies: new Map() };
  const policies = new Map<Designator, number>();
  let defaultFlags = IGNORE;
  let defaultSet = false;
  for (const rule of s.split(':')) {
    const eq = rule.indexOf('=');
    if (eq < 0) throw new Error(`Failed to parse image policy: ${s} (missing '=' in ${rule})`);
    const name = rule.slice(0, eq).trim();
    const flags = flagsFromString(rule.slice(eq + 1), s);
    if (name === '') {
      if (defaultSet) throw new Error(`Failed to parse image policy: ${s} (default policy given twice)`);
      defaultSet = true;
      defaultFlags = flags;
      continue;
    }
    if (!DESIGNATORS.includes(name as Designator)) throw new Error(`Unknown partition type in image policy: ${s}`);
    if (policies.has(name as Designator)) throw new Error(`Failed to parse image policy: ${s} (${name} given twice)`);
    policies.set(name as Designator, flags);
  }
  return { defaultFlags, policies };
}

/** partition_policy_normalized_flags(): unspecified parts mean "any", flags that make no sense for D are dropped. */
function normalized(d: Designator, flags: number): number {
  let f = flags;
  if ((f & USE_MASK) === 0) f |= OPEN;
  if ((f & RO_MASK) === 0) f |= RO_MASK;
  if ((f & GROWFS_MASK) === 0) f |= GROWFS_MASK;
  if (verityToData(d) || sigToData(d)) f &= ~(VERITY | SIGNED | ENCRYPTED);
  if (!DATA_DESIGNATORS.has(d)) f &= ~(VERITY | SIGNED);
  if ((f & USE_MASK) === ABSENT) f &= ~PFLAGS_MASK;
  return f;
}

/** image_policy_get(): an explicit rule, or one derived for Verity partitions from their data partition's. */
function policyGet(p: ImagePolicy, d: Designator): number | undefined {
  const explicit = p.policies.get(d);
  if (explicit !== undefined) return normalized(d, explicit);
  const sig = sigToData(d);
  const data = sig ?? verityToData(d);
  if (!data) return undefined;
  const df = policyGet(p, data);
  if (df === undefined) return undefined;
  if (!(df & (sig ? SIGNED : SIGNED | VERITY))) return undefined;
  return normalized(d, UNPROTECTED | (df & (UNUSED | ABSENT)) | (df & PFLAGS_MASK));
}

/** The flags that apply to D: its rule, else the default (image_policy_get_exhaustively()). */
export function policyFlags(p: ImagePolicy, d: Designator): number {
  return policyGet(p, d) ?? normalized(d, p.defaultFlags);
}

/** partition_policy_flags_to_string(), simplified as systemd prints it. */
export function policyFlagsToString(flags: number): string {
  const out: string[] = [];
  const use = flags & USE_MASK;
  if (use === OPEN) out.push('open');
  else if (use === IGNORE) out.push('ignore');
  for (const [n, f] of FLAG_NAMES) {
    if ((use === OPEN || use === IGNORE) && f & USE_MASK) continue;
    if (flags & f) out.push(n);
  }
  return out.join('+');
}

/**
 * Applies POLICY to a dissected image: refuses (ERFKILL, "... does not match image policy") what it does not allow
 * and returns the image without the partitions it says to leave unused.
 */
export function applyImagePolicy(img: DissectedImage, policy: ImagePolicy): DissectedImage {
  const refuse = (why: string) => new ImageError(`${img.image}: image does not match image policy: ${why}`, 'ERFKILL', img.image);
  const partitions = { ...img.partitions };
  const ignored = new Set<Designator>();
  for (const d of Object.keys(partitions) as Designator[]) {
    const use = policyFlags(policy, d) & USE_MASK;
    if (use === ABSENT) throw refuse(`Partition of designator '${d}' exists, but not allowed by policy, refusing.`);
    if ((use & ~ABSENT) === UNUSED) {
      ignored.add(d);
      delete partitions[d];
    }
  }
  for (const d of DESIGNATORS) {
    const p = partitions[d];
    const data = sigToData(d) ?? verityToData(d);
    let found: number;
    if (!p) found = ignored.has(d) ? UNUSED : ABSENT;
    else if (data || !DATA_DESIGNATORS.has(d)) found = p.fstype === 'crypto_LUKS' ? ENCRYPTED : UNPROTECTED;
    else if (partitions[`${d}-verity` as Designator]) found = partitions[`${d}-verity-sig` as Designator] ? SIGNED : VERITY;
    else found = p.fstype === 'crypto_LUKS' ? ENCRYPTED : UNPROTECTED;
    const allowed = policyFlags(policy, d);
    if ((found & allowed) === 0)
      throw refuse(`Partition ${d} discovered with policy '${policyFlagsToString(found)}' but '${policyFlagsToString(allowed & USE_MASK)}' was required, refusing.`);
    if (!p) continue;
    for (const [bit, on, off, name] of [
      [GPT_FLAG_READ_ONLY, RO_ON, RO_OFF, 'read-only'],
      [GPT_FLAG_GROWFS, GROWFS_ON, GROWFS_OFF, 'growfs'],
    ] as const) {
      const set = (p.flags & bit) !== 0n;
      if ((allowed & (on | off)) === (set ? off : on))
        throw refuse(`Partition ${d} has '${name}' flag incorrectly set (must be ${set ? 0 : 1}, is ${set ? 1 : 0}), refusing.`);
    }
  }
  if (ignored.size === 0) return img;
  return {
    ...img,
    partitions,
    entries: img.entries.map((u) => (u.designator && ignored.has(u.designator) ? { entry: u.entry, ignored: 'the image policy says unused' } : u)),
  };
}
