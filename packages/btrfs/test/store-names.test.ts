/**
 * The image store never leaves its directory, whatever name it is given: ".", "..", "a/b", "", an over-long name,
 * and symlinks in the store that lead out of it (to its parent, to itself, elsewhere on the host) are refused by
 * every operation, and nothing outside the store (nor the store's entries) changes. A symlink to an image inside
 * the store stays an image, as systemd's discovery has it. Root only, on ext4 and btrfs.
 */
import { lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  cleanImages,
  cloneImage,
  findImage,
  ImageError,
  imageStatus,
  isImmutable,
  listImages,
  removeImage,
  renameImage,
  setImageLimit,
  setImageReadOnly,
  setImmutable,
} from '../src/index.js';
import { fileSystemsForTests } from './fixture.js';

const fss = fileSystemsForTests();

const code = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ImageError);
    return (e as { code?: string }).code;
  }
  return 'no error';
};

/** every entry below DIR with its type, mode, size and immutable flag (what must not change) */
function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d).sort()) {
      const p = join(d, e);
      const st = lstatSync(p);
      out.push(`${p} ${st.mode.toString(8)} ${st.isSymbolicLink() ? readlinkSync(p) : st.size} ${st.isDirectory() && isImmutable(p) ? 'i' : ''}`);
      if (st.isDirectory()) walk(p);
    }
  };
  out.push(`${dir} ${isImmutable(dir) ? 'i' : ''}`);
  walk(dir);
  return out;
}

const INVALID = ['.', '..', 'a/b', '', 'x'.repeat(256), '../x', './dir1', 'dir1/..', 'tab\tname', '.#tmp'];
const OUTSIDE = ['up', 'abs', 'self', 'loop'];

describe.each(['ext4', 'btrfs'] as const)('image names and paths on %s', (kind) => {
  const nest = () => join(fss[kind]!.dir, 'nest');
  const root = () => join(nest(), 'machines');

  it('prepares a store with hostile symlinks in it', () => {
    mkdirSync(join(root(), 'dir1/usr'), { recursive: true });
    writeFileSync(join(root(), 'dir1/usr/file'), 'x');
    mkdirSync(join(nest(), 'outside/etc'), { recursive: true });
    writeFileSync(join(nest(), 'outside/etc/secret'), 'host file\n');
    symlinkSync('..', join(root(), 'up')); // the store's parent
    symlinkSync(join(nest(), 'outside'), join(root(), 'abs')); // elsewhere on the host
    symlinkSync('.', join(root(), 'self')); // the store itself
    symlinkSync('dir1/../..', join(root(), 'loop')); // out through an image
    symlinkSync('dir1', join(root(), 'alias')); // an image inside the store: fine
    symlinkSync('nowhere', join(root(), 'dangling'));
    expect(readdirSync(root()).sort()).toEqual(['abs', 'alias', 'dangling', 'dir1', 'loop', 'self', 'up']);
  });

  it('lists only images that stay inside the store; a symlink to an image in the store is one', () => {
    expect(listImages({ root: root(), hidden: true }).map((i) => i.name)).toEqual(['alias', 'dir1']);
    expect(imageStatus('alias', { root: root() })).toMatchObject({ name: 'alias', path: join(root(), 'alias') });
    expect(findImage('alias', { root: root() })).toMatchObject({ name: 'alias', path: join(root(), 'alias'), realPath: join(root(), 'dir1') });
    expect(code(() => imageStatus('dangling', { root: root() }))).toBe('ENOENT');
  });

  it('every operation refuses ".", "..", "a/b", "", an over-long name and symlinks out of the store; nothing changes', () => {
    const before = snapshot(nest());
    const r = { root: root() };
    for (const name of [...INVALID, ...OUTSIDE]) {
      const want = INVALID.includes(name) ? 'EINVAL' : 'EPERM';
      const ops: Array<[string, () => unknown]> = [
        ['findImage', () => findImage(name, r)],
        ['imageStatus', () => imageStatus(name, r)],
        ['setImageReadOnly', () => setImageReadOnly(name, true, r)],
        ['setImageReadOnly off', () => setImageReadOnly(name, false, r)],
        ['setImageLimit', () => setImageLimit(name, 1e9, { ...r, enableQuota: false })],
        ['renameImage', () => renameImage(name, 'bt-renamed', r)],
        ['removeImage', () => removeImage(name, r)],
        ['cloneImage', () => cloneImage(name, 'bt-clone', r)],
      ];
      for (const [op, f] of ops) expect(code(f), `${op}(${JSON.stringify(name)})`).toBe(want);
    }
    // as the new name: invalid names are refused, the symlinks' names exist already
    for (const name of INVALID) {
      expect(code(() => cloneImage('dir1', name, r)), `clone to ${JSON.stringify(name)}`).toBe('EINVAL');
      expect(code(() => renameImage('dir1', name, r)), `rename to ${JSON.stringify(name)}`).toBe('EINVAL');
    }
    for (const name of OUTSIDE) expect(code(() => cloneImage('dir1', name, r))).toBe('EEXIST');
    expect(snapshot(nest())).toEqual(before);
    expect(readFileSync(join(nest(), 'outside/etc/secret'), 'utf8')).toBe('host file\n');
    expect(cleanImages({ root: root() })).toEqual([]);
    expect(snapshot(nest())).toEqual(before);
  });

  it('the message names the image, the store and where the link leads', () => {
    expect(() => setImageReadOnly('up', true, { root: root() })).toThrow(`Image "up" is a symlink to ${nest()}, outside the image store ${root()}: refusing to use it`);
    expect(() => setImageReadOnly('..', true, { root: root() })).toThrow('Invalid image name ".."');
  });

  it('a symlinked image inside the store still works, and is never cloned into itself', () => {
    const c = cloneImage('alias', 'bt-alias-clone', { root: root() });
    expect(readFileSync(join(c.path, 'usr/file'), 'utf8')).toBe('x');
    removeImage('bt-alias-clone', { root: root() });
    removeImage('alias', { root: root() }); // the link only
    expect(readFileSync(join(root(), 'dir1/usr/file'), 'utf8')).toBe('x');
  });
});

// whatever ran above, the store's parent must not be left immutable (the old code set the flag through "..")
describe('cleanup', () => {
  it('leaves no immutable directory behind', () => {
    for (const kind of ['ext4', 'btrfs'] as const) {
      const n = join(fss[kind]!.dir, 'nest');
      for (const p of [n, join(n, 'outside'), join(n, 'machines')]) {
        try {
          if (isImmutable(p)) setImmutable(p, false);
        } catch {
          // not made
        }
      }
    }
  });
});
