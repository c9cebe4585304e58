/**
 * nspawnctl's verb table (src/ctl-verbs.ts): each group names exactly the verbs its module exports (the modules are
 * imported only when one of their verbs runs, so the names are listed beside them), no verb is in two groups, and
 * the verbs any user may run are verbs; no root needed.
 */
import { describe, expect, it } from 'vitest';
import { READ_ONLY_VERBS, VERB_GROUPS } from '../src/ctl-verbs.js';

describe('nspawnctl verb groups', () => {
  it('each group lists exactly the verbs its module has', async () => {
    for (const [names, load] of VERB_GROUPS) expect(Object.keys(await load()).sort()).toEqual([...names].sort());
  });

  it('no verb is in two groups; the read-only ones exist', () => {
    const all = VERB_GROUPS.flatMap(([names]) => names);
    expect(new Set(all).size).toBe(all.length);
    for (const v of READ_ONLY_VERBS) expect(all).toContain(v);
    expect([...READ_ONLY_VERBS].sort()).toEqual(['image-status', 'list', 'list-images', 'list-transfers', 'show', 'show-image', 'status']);
  });
});
