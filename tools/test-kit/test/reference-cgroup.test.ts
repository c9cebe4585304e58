/**
 * The reference's cgroup (src/reference-cgroup.ts) for real: systemd-nspawn 252 --keep-unit run through
 * referenceCommand() splits that cgroup, not this process's, and removeReferenceCgroup() leaves nothing of it.
 * Needs root and /usr/bin/systemd-nspawn.
 */
import { execa } from 'execa';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { keepUnitHierarchies, makeTree, referenceCgroupPath, referenceCommand, removeReferenceCgroup, requireRoot, SYSTEMD_NSPAWN } from '../src/index.js';

describe('the reference cgroup', () => {
  const tree = makeTree('pk-refcg-');
  afterAll(() => tree.cleanup());

  it("systemd-nspawn --keep-unit makes payload/ and supervisor/ there, and they go with it", async () => {
    requireRoot();
    expect(existsSync(SYSTEMD_NSPAWN), `${SYSTEMD_NSPAWN} is missing: install systemd-container`).toBe(true);
    const mine = readFileSync('/proc/self/cgroup', 'utf8');
    const r = await execa(...referenceCommand(['-q', '--register=no', '--keep-unit', '-D', tree.root, '/bin/cat', '/proc/self/cgroup']), { stdin: 'ignore', reject: false });
    expect(r.exitCode, r.stderr).toBe(0);
    const cg = referenceCgroupPath();
    expect(cg).toMatch(/^\/nspawn-ref-[0-9a-f]{8}$/);
    const dirs = keepUnitHierarchies().map((h) => join(h, cg));
    expect(dirs.length).toBeGreaterThan(0);
    // 252 split the reference cgroup: the container was in payload/, 252 itself in supervisor/; both are left
    for (const d of dirs) for (const sub of ['payload', 'supervisor']) expect(existsSync(join(d, sub)), join(d, sub)).toBe(true);
    // this process stayed where it was
    expect(readFileSync('/proc/self/cgroup', 'utf8')).toBe(mine);
    await removeReferenceCgroup();
    expect(dirs.filter((d) => existsSync(d))).toEqual([]);
    // a new one the next time
    expect(referenceCgroupPath()).not.toBe(cg);
    await removeReferenceCgroup();
  });
});
