/** The pure parts: mountinfo parsing, systemd's snapshot names, path containment, image names, the mode variable. */
import { describe, expect, it } from 'vitest';
import { parseMountInfo, isMountPoint, mountsUnder } from './mounts.js';
import { ephemeralModeFromEnv, ephemeralSnapshotPath, removeEphemeral } from './ephemeral.js';
import { isStrictlyInside } from './remove.js';
import { imageNameIsValid } from './store.js';
import { localLockPath } from './lock.js';

const INFO = `22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
40 22 0:41 / /var/lib/machines/with\\040space rw - btrfs /dev/loop0 rw,space_cache=v2
41 40 0:42 / /var/lib/machines/with\\040space/inner rw - overlay nspawn-ephemeral rw,lowerdir=/a,upperdir=/b,workdir=/c
`;

describe('mountinfo', () => {
  it('parses targets (unescaped), types, sources and super options', () => {
    const t = parseMountInfo(INFO);
    expect(t.map((m) => m.target)).toEqual(['/', '/var/lib/machines/with space', '/var/lib/machines/with space/inner']);
    expect(t[2]).toMatchObject({ fsType: 'overlay', source: 'nspawn-ephemeral', parent: 40 });
    expect(isMountPoint('/var/lib/machines/with space', t)).toBe(true);
    expect(isMountPoint('/var/lib/machines', t)).toBe(false);
    expect(mountsUnder('/var/lib/machines', t).map((m) => m.target)).toEqual(['/var/lib/machines/with space', '/var/lib/machines/with space/inner']);
    expect(mountsUnder('/var/lib/machines/with', t)).toEqual([]);
  });
});

describe('names', () => {
  it('snapshot beside the tree, as tempfn_random(DIR, "machine.") makes it; inside a mount point', () => {
    expect(ephemeralSnapshotPath('/var/tmp/no-such-dir/tree', '0123456789abcdef')).toBe('/var/tmp/no-such-dir/.#machine.tree0123456789abcdef');
    expect(ephemeralSnapshotPath('/', '0123456789abcdef')).toBe('/.#machine.0123456789abcdef');
    expect(ephemeralSnapshotPath('/var/tmp/x').slice('/var/tmp/'.length)).toMatch(/^\.#machine\.x[0-9a-f]{16}$/);
  });
  it('the remover refuses what is not named as a snapshot (before it touches anything)', () => {
    expect(() => removeEphemeral('/var/tmp/no-such-dir/tree')).toThrow('Refusing to remove /var/tmp/no-such-dir/tree: not an ephemeral snapshot');
    expect(() => removeEphemeral('/var/tmp/no-such-dir/.#other.tree0123456789abcdef')).toThrow('not an ephemeral snapshot');
    expect(() => removeEphemeral('/var/tmp/no-such-dir/.#machine.tree0123456789abcdef')).not.toThrow('not an ephemeral snapshot');
  });
  it('lock files beside the image', () => {
    expect(localLockPath('/var/lib/machines/foo')).toBe('/var/lib/machines/.#foo.lck');
    expect(localLockPath('/var/lib/machines/.#machine.fooabc')).toBe('/var/lib/machines/.#.#machine.fooabc.lck');
  });
  it('containment is by path component, never by string prefix', () => {
    expect(isStrictlyInside('/a/b/c', '/a/b')).toBe(true);
    expect(isStrictlyInside('/a/bc', '/a/b')).toBe(false);
    expect(isStrictlyInside('/a/b', '/a/b')).toBe(false);
    expect(isStrictlyInside('/x', '/')).toBe(true);
  });
  it('image names as image_name_is_valid()', () => {
    for (const ok of ['debian', 'fedora-40', '.hidden', 'a.b']) expect(imageNameIsValid(ok)).toBe(true);
    for (const bad of ['', '.', '..', 'a/b', '.#tmp', 'x'.repeat(256), 'tab\there']) expect(imageNameIsValid(bad)).toBe(false);
  });
  it('$NSPAWN_EPHEMERAL', () => {
    expect(ephemeralModeFromEnv({})).toBe('auto');
    expect(ephemeralModeFromEnv({ NSPAWN_EPHEMERAL: 'copy' })).toBe('copy');
    expect(() => ephemeralModeFromEnv({ NSPAWN_EPHEMERAL: 'fast' })).toThrow('Invalid $NSPAWN_EPHEMERAL=fast');
  });
});
