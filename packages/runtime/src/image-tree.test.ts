import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { imageTree } from './image-tree.js';

const dir = mkdtempSync(join(tmpdir(), 'nspawn-image-tree-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// a root partition whose /usr is an empty mount point, and a /usr partition of its own
const root = join(dir, 'root');
const usr = join(dir, 'usr');
mkdirSync(join(root, 'etc'), { recursive: true });
mkdirSync(join(root, 'usr'));
mkdirSync(join(usr, 'lib'), { recursive: true });
mkdirSync(join(usr, 'bin'));
writeFileSync(join(usr, 'lib/os-release'), 'ID=split\n');
writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0::/root:/bin/sh\n');
symlinkSync('../usr/lib/os-release', join(root, 'etc/os-release'));
symlinkSync('usr/bin', join(root, 'bin'));
symlinkSync('/etc/passwd', join(usr, 'lib/escape')); // absolute: inside the image, never the host's
symlinkSync('../../../../../etc/hostname', join(usr, 'lib/up'));

describe('imageTree()', () => {
  const t = imageTree({ root, usr });
  it('reads the root partition, and /usr from its own partition', () => {
    expect(t.readFile('/etc/passwd')).toBe('root:x:0:0::/root:/bin/sh\n');
    expect(t.readFile('/usr/lib/os-release')).toBe('ID=split\n');
    expect(t.isDirectory('/usr')).toBe(true);
    expect(t.readdir('/usr').sort()).toEqual(['bin', 'lib']);
  });
  it('follows symlinks across the partitions, never out of the image', () => {
    expect(t.readFile('/etc/os-release')).toBe('ID=split\n');
    expect(t.isDirectory('/bin')).toBe(true);
    expect(t.readlink('/bin')).toBe('usr/bin');
    expect(t.lexists('/bin')).toBe(true);
    expect(t.readFile('/usr/lib/escape')).toBe('root:x:0:0::/root:/bin/sh\n');
    expect(t.resolve('/usr/lib/up')).toBeUndefined();
    expect(t.lexists('/nope')).toBe(false);
  });
  it('an image with only /usr: nothing but /usr exists', () => {
    const u = imageTree({ usr });
    expect(u.readFile('/usr/lib/os-release')).toBe('ID=split\n');
    expect(u.readFile('/etc/passwd')).toBeUndefined();
    expect(u.isDirectory('/')).toBe(true);
    expect(u.readdir('/')).toEqual(['usr']);
  });
});
