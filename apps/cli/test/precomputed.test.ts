/**
 * The seccomp programs the bundle carries (scripts/bundle.mjs) are the ones the runtime computes for the same
 * options, and the usual starts find theirs in the table.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { containerCapabilities, nspawnSeccompFilter, seccompFilterKey, type PrecomputedSeccomp } from '@nspawn/runtime';

const table = JSON.parse(readFileSync(new URL('../dist/precomputed-seccomp.json', import.meta.url), 'utf8')) as PrecomputedSeccomp;

describe('precomputed seccomp programs', () => {
  it('equal the programs computed at start-up', () => {
    expect(Object.keys(table).length).toBeGreaterThanOrEqual(6);
    for (const [key, entry] of Object.entries(table)) {
      const [retain, allow, deny, suppressSync] = JSON.parse(key) as [string, string[], string[], boolean];
      const f = nspawnSeccompFilter({ retainedCapabilities: BigInt(`0x${retain}`), allow, deny, suppressSync });
      expect(entry.hex).toBe(Buffer.from(f.bytes).toString('hex'));
      expect(entry.warnings).toEqual(f.warnings);
    }
  });
  it('cover a plain start and one with a private network', () => {
    for (const s of [{}, { privateNetwork: true }]) {
      const key = seccompFilterKey({ retainedCapabilities: containerCapabilities(s, s).retain, allow: [], deny: [], suppressSync: false });
      expect(table[key]).toBeDefined();
    }
  });
  it('are in the bundle', () => {
    const bundle = readFileSync(new URL('../dist/nspawn.cjs', import.meta.url), 'utf8');
    const [first] = Object.values(table);
    expect(bundle).toContain(first!.hex);
  });
});
