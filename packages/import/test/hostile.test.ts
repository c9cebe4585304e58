// Hostile archives through importTar(): each case asserts that nothing outside the image changed (the canary's
// inodes, modes, owners, contents and mtimes, and no new entry) and that the store lists no half image.
import { closeSync, existsSync, lstatSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { O_DIRECTORY, O_RDONLY, removeTreeAt, setOpenat2 } from '@nspawn/syscall';
import { importTar } from '../src/index.js';
import { buildTar, type Member } from '../src/test-build-tar.js';
import { type Fixture, makeFixture, storeListing } from './fixture.js';

let fx: Fixture;
beforeEach(() => {
  fx = makeFixture();
});
afterEach(() => {
  // through descriptors: some images are deeper than PATH_MAX
  const fd = openSync('/tmp', O_RDONLY | O_DIRECTORY);
  try {
    removeTreeAt(fd, fx.base.slice('/tmp/'.length));
  } finally {
    closeSync(fd);
  }
});

let n = 0;
/** imports MEMBERS as image "img"; checks the canary and the store; returns the image path (or the error) */
async function attempt(members: Member[] | Buffer, want: 'ok' | RegExp): Promise<string> {
  const before = fx.snapshot();
  const file = join(fx.work, `a${n++}.tar`);
  writeFileSync(file, Buffer.isBuffer(members) ? members : buildTar(members));
  let err: unknown;
  try {
    await importTar(file, { name: 'img', root: fx.store });
  } catch (e) {
    err = e;
  }
  expect(fx.snapshot(), 'nothing outside the image changed').toBe(before);
  if (want === 'ok') {
    expect(err, String(err)).toBeUndefined();
    expect(storeListing(fx.store)).toEqual(['img']);
    return join(fx.store, 'img');
  }
  expect(err, 'refused').toBeInstanceOf(Error);
  const msg = (err as Error).message;
  expect((err as Error).name).toBe('ImportError');
  expect(msg).toMatch(want);
  expect(msg.includes('\n'), `one line: ${msg}`).toBe(false);
  expect(msg.includes(file), `names the archive: ${msg}`).toBe(true);
  expect(storeListing(fx.store), 'no half image, no leftover').toEqual([]);
  return msg;
}

describe.each([
  ['openat2', true],
  ['the O_NOFOLLOW walk (kernels without openat2)', false],
])('hostile archives (importTar), with %s', (_how, openat2) => {
  beforeAll(() => setOpenat2(openat2));
  afterAll(() => setOpenat2(true));

  it('a directory 06777, then a symlink of the same name to a host file: the mode never reaches the host file', async () => {
    const img = await attempt(
      [
        { name: 'x/', type: '5', mode: 0o6777 },
        { name: 'x', type: '2', linkname: fx.victim },
      ],
      'ok',
    );
    expect(readlinkSync(join(img, 'x'))).toBe(fx.victim);
    expect(statSync(fx.victim).mode & 0o7777).toBe(0o640);
  });

  it('a directory 06777, then a symlink to a host directory, then members below it', async () => {
    await attempt(
      [
        { name: 'd/', type: '5', mode: 0o6777 },
        { name: 'd', type: '2', linkname: join(fx.outside, 'dir') },
        { name: 'd/inner', data: 'pwned' },
      ],
      /member 'd\/inner' would be written through the symlink 'd'/,
    );
  });

  it('../ in a name', async () => {
    await attempt([{ name: 'a/../../outside/victim', data: 'pwned' }], /member 'a\/\.\.\/\.\.\/outside\/victim' climbs out with '\.\.'/);
  });

  it('an absolute name', async () => {
    await attempt([{ name: fx.victim, data: 'pwned' }], /has an absolute path/);
  });

  it('a write through a symlink to a host directory', async () => {
    await attempt(
      [
        { name: 'esc', type: '2', linkname: join(fx.outside, 'dir') },
        { name: 'esc/new', data: 'pwned' },
      ],
      /member 'esc\/new' would be written through the symlink 'esc'/,
    );
  });

  it('a symlink to a host file, then a file of that name: the link is replaced, the host file untouched', async () => {
    const img = await attempt(
      [
        { name: 'v', type: '2', linkname: fx.victim },
        { name: 'v', data: 'inside', mode: 0o600 },
      ],
      'ok',
    );
    expect(lstatSync(join(img, 'v')).isFile()).toBe(true);
    expect(readFileSync(join(img, 'v'), 'utf8')).toBe('inside');
  });

  it('a hard link to a host file (relative), then a write to it', async () => {
    await attempt(
      [
        { name: 'h', type: '1', linkname: '../outside/victim' },
        { name: 'h', data: 'pwned' },
      ],
      /hard link 'h' \(to '\.\.\/outside\/victim'\) climbs out/,
    );
  });

  it('a hard link to a host file (absolute), then a write to it', async () => {
    await attempt(
      [
        { name: 'h', type: '1', linkname: fx.victim },
        { name: 'h', data: 'pwned' },
      ],
      /hard link 'h' .* has an absolute path/,
    );
  });

  it('a hard link through an in-image symlink to the host, then a write: refused', async () => {
    await attempt(
      [
        { name: 'l', type: '2', linkname: fx.outside },
        { name: 'h', type: '1', linkname: 'l/victim' },
        { name: 'h', data: 'pwned' },
      ],
      /member 'h' is a hard link to 'l\/victim', which is not a file extracted before/,
    );
  });

  it('a hard link to an in-image symlink that points out, then a write to it: the write replaces the link', async () => {
    const img = await attempt(
      [
        { name: 'l', type: '2', linkname: fx.victim },
        { name: 'h', type: '1', linkname: 'l' },
        { name: 'h', data: 'inside' },
      ],
      'ok',
    );
    expect(readFileSync(join(img, 'h'), 'utf8')).toBe('inside');
  });

  it('a PAX long name that escapes', async () => {
    const long = `${'d/'.repeat(60)}${'../'.repeat(62)}outside/victim`;
    await attempt([{ name: 'short', pax: [['path', long]], data: 'pwned' }], /climbs out with '\.\.'/);
  });

  it('a GNU long name that escapes', async () => {
    const long = `${'d/'.repeat(60)}${'../'.repeat(62)}outside/victim`;
    await attempt([{ name: long, gnuLongName: true, data: 'pwned' }], /climbs out with '\.\.'/);
  });

  it('a GNU long link name of a hard link that escapes', async () => {
    await attempt([{ name: 'h', type: '1', linkname: `${'../'.repeat(40)}${fx.victim.slice(1)}`, gnuLongLink: true }], /hard link 'h' .* climbs out/);
  });

  it('a NUL in a PAX name', async () => {
    await attempt([{ name: 'ok', pax: [['path', Buffer.from('ok\0/../../outside/victim')]], data: 'pwned' }], /a NUL byte in its name/);
  });

  it('devices, a fifo and a socket-typed file land inside the image only', async () => {
    const img = await attempt(
      [
        { name: 'dev/', type: '5' },
        { name: 'dev/null', type: '3', devmajor: 1, devminor: 3, mode: 0o666 },
        { name: 'dev/loop9', type: '4', devmajor: 7, devminor: 9, mode: 0o660, gid: 6 },
        { name: 'dev/fifo', type: '6', mode: 0o4620 },
        { name: 'dev/sock', mode: 0o140777, data: 'x' },
      ],
      'ok',
    );
    const c = lstatSync(join(img, 'dev/null'));
    expect([c.isCharacterDevice(), c.rdev, c.mode & 0o7777]).toEqual([true, 0x103, 0o666]);
    const b = lstatSync(join(img, 'dev/loop9'));
    expect([b.isBlockDevice(), b.rdev, b.gid]).toEqual([true, 0x709, 6]);
    expect(lstatSync(join(img, 'dev/fifo')).isFIFO()).toBe(true);
    expect(lstatSync(join(img, 'dev/fifo')).mode & 0o7777).toBe(0o4620);
    expect(lstatSync(join(img, 'dev/sock')).isFile()).toBe(true);
  });

  it('a fifo, then a file of the same name (which is never opened as the fifo)', async () => {
    const img = await attempt(
      [
        { name: 'f', type: '6' },
        { name: 'f', data: 'data' },
      ],
      'ok',
    );
    expect(readFileSync(join(img, 'f'), 'utf8')).toBe('data');
  });

  it('duplicates: the last member wins, for files and directories', async () => {
    const img = await attempt(
      [
        { name: 'f', data: 'one', mode: 0o644 },
        { name: 'f', data: 'two', mode: 0o600, uid: 7 },
        { name: 'd/', type: '5', mode: 0o700 },
        { name: 'd/', type: '5', mode: 0o751 },
      ],
      'ok',
    );
    const st = statSync(join(img, 'f'));
    expect([readFileSync(join(img, 'f'), 'utf8'), st.mode & 0o7777, st.uid, st.nlink]).toEqual(['two', 0o600, 7, 1]);
    expect(statSync(join(img, 'd')).mode & 0o7777).toBe(0o751);
  });

  it('a directory, then a file of the same name: the file keeps its own mode', async () => {
    const img = await attempt(
      [
        { name: 'x/', type: '5', mode: 0o755 },
        { name: 'x/inner', data: 'gone' },
        { name: 'x', data: 'file', mode: 0o600 },
      ],
      'ok',
    );
    expect(statSync(join(img, 'x')).mode & 0o7777).toBe(0o600);
    expect(readFileSync(join(img, 'x'), 'utf8')).toBe('file');
  });

  it('set-ID directories get their bits inside the image', async () => {
    const img = await attempt(
      [
        { name: 'sgid/', type: '5', mode: 0o2775, gid: 8 },
        { name: 'sticky/', type: '5', mode: 0o1777 },
        { name: 'sgid/f', data: 'x', mode: 0o4755 },
      ],
      'ok',
    );
    expect(statSync(join(img, 'sgid')).mode & 0o7777).toBe(0o2775);
    expect(statSync(join(img, 'sticky')).mode & 0o7777).toBe(0o1777);
    expect(statSync(join(img, 'sgid/f')).mode & 0o7777).toBe(0o4755);
  });

  it('the root entry as a symlink', async () => {
    await attempt([{ name: './', type: '2', linkname: fx.outside }], /is the root and not a directory/);
  });

  it('a hard link to a directory', async () => {
    await attempt(
      [
        { name: 'd/', type: '5' },
        { name: 'h', type: '1', linkname: 'd' },
      ],
      /hard link to 'd', which is not a file extracted before/,
    );
  });

  it('GNU sparse (with extension blocks): holes stay holes, the data lands at its offsets', async () => {
    const map: Array<[number, number]> = Array.from({ length: 30 }, (_, i) => [i * 1048576, 512]);
    const data = Buffer.concat(map.map((_, i) => Buffer.alloc(512, 65 + (i % 26))));
    const realSize = 31 * 1048576;
    const img = await attempt([{ name: 'sp', type: 'S', data, sparse: { map, realSize } }, { name: 'after', data: 'next member' }], 'ok');
    const f = readFileSync(join(img, 'sp'));
    expect(f.length).toBe(realSize);
    for (const [i, [o]] of map.entries()) expect(f.subarray(o, o + 512).equals(Buffer.alloc(512, 65 + (i % 26))), `segment ${i}`).toBe(true);
    expect(f.subarray(512, 1048576).every((b) => b === 0)).toBe(true);
    expect(statSync(join(img, 'sp')).blocks * 512).toBeLessThan(4 * 1048576);
    expect(readFileSync(join(img, 'after'), 'utf8')).toBe('next member');
  });

  for (const v of ['0.0', '0.1', '1.0'] as const) {
    it(`PAX sparse ${v}: the real name, the real size, holes`, async () => {
      const map: Array<[number, number]> = [
        [4096, 5],
        [8 * 1048576, 3],
      ];
      let data = Buffer.from('helloxyz');
      const pax: Array<[string, string]> = [];
      if (v === '0.0') {
        pax.push(['GNU.sparse.size', String(9 * 1048576)], ['GNU.sparse.numblocks', '2']);
        for (const [o, l] of map) pax.push(['GNU.sparse.offset', String(o)], ['GNU.sparse.numbytes', String(l)]);
      } else if (v === '0.1') pax.push(['GNU.sparse.size', String(9 * 1048576)], ['GNU.sparse.name', 'real'], ['GNU.sparse.map', map.flat().join(',')]);
      else {
        pax.push(['GNU.sparse.major', '1'], ['GNU.sparse.minor', '0'], ['GNU.sparse.name', 'real'], ['GNU.sparse.realsize', String(9 * 1048576)]);
        const head = Buffer.from(`2\n${map.flat().join('\n')}\n`);
        data = Buffer.concat([head, Buffer.alloc(512 - head.length), data]);
      }
      const name = v === '0.0' ? 'real' : 'GNUSparseFile.123/real';
      const img = await attempt([{ name, pax, data }], 'ok');
      expect(readdirSync(img)).toEqual(['real']);
      const f = readFileSync(join(img, 'real'));
      expect(f.length).toBe(9 * 1048576);
      expect(f.subarray(4096, 4101).toString()).toBe('hello');
      expect(f.subarray(8 * 1048576, 8 * 1048576 + 3).toString()).toBe('xyz');
      expect(statSync(join(img, 'real')).blocks * 512).toBeLessThan(1048576);
    });
  }

  it('a truncated archive (a member cut short)', async () => {
    const t = buildTar([{ name: 'ok', data: 'fine' }, { name: 'big', data: Buffer.alloc(10000, 1) }], { end: false });
    await attempt(t.subarray(0, 512 * 3 + 4096), /member 'big': the archive is truncated \(the member declares 10000 bytes of data, 4096 follow its header\)/);
  });

  it('a member that declares 100 GB and carries 4 KB', async () => {
    const t = buildTar([{ name: 'huge', size: 100 * 1024 ** 3, data: Buffer.alloc(4096, 7) }]);
    await attempt(t, /member 'huge': the archive is truncated \(the member declares 107374182400 bytes of data/);
  });

  it('a bad checksum', async () => {
    await attempt(buildTar([{ name: 'a', data: 'x' }, { name: 'b', data: 'y', badChecksum: true }]), /after member 'a': a damaged tar header/);
  });

  it('a name of 4000 bytes works; one longer than PATH_MAX is one clear line', async () => {
    const long = Array.from({ length: 20 }, (_, i) => `${String(i).padStart(2, '0')}${'n'.repeat(197)}`).join('/'); // 3999 bytes
    const img = await attempt([{ name: 'x', pax: [['path', long]], data: 'deep' }], 'ok');
    const fd = openSync(img, O_RDONLY | O_DIRECTORY);
    closeSync(fd);
    expect(existsSync(join(img, long.split('/')[0]!))).toBe(true);
  });

  it('a name longer than PATH_MAX', async () => {
    const long = Array.from({ length: 25 }, () => 'n'.repeat(200)).join('/');
    await attempt([{ name: 'x', pax: [['path', long]], data: 'deep' }], /has a name of 5024 bytes, longer than PATH_MAX \(4096\)/);
  });

  it('a component longer than NAME_MAX', async () => {
    await attempt([{ name: 'x', pax: [['path', `a/${'n'.repeat(300)}`]], data: 'x' }], /a component of 300 bytes, longer than NAME_MAX \(255\)/);
  });
});
