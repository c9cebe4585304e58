import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildTar } from './test-build-tar.js';
import { extractTar, ImportError, safeComponents } from './tar.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync('/tmp/dm-tar-');
  mkdirSync(join(dir, 'out'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const extract = (members: Parameters<typeof buildTar>[0]) => {
  writeFileSync(join(dir, 'a.tar'), buildTar(members));
  return extractTar(join(dir, 'a.tar'), join(dir, 'out'));
};

describe('safeComponents', () => {
  it('refuses absolute paths and .. anywhere', () => {
    expect(safeComponents('./a/b/')).toEqual(['a', 'b']);
    expect(() => safeComponents('/etc/passwd')).toThrow(/absolute path/);
    expect(() => safeComponents('a/../../b')).toThrow(/'\.\.'/);
  });
});

describe('extractTar', () => {
  it('extracts files, directories, symlinks and hard links with owners and modes', () => {
    const s = extract([
      { name: './', type: '5', mode: 0o755 },
      { name: 'etc/', type: '5', mode: 0o700, uid: 12, gid: 34 },
      { name: 'etc/f', data: 'hello', mode: 0o4755, uid: 5, gid: 6 },
      { name: 'etc/l', type: '2', linkname: '/etc/f' },
      { name: 'etc/h', type: '1', linkname: 'etc/f' },
    ]);
    expect(s.entries).toBe(4);
    const out = join(dir, 'out');
    expect(readFileSync(join(out, 'etc/f'), 'utf8')).toBe('hello');
    const st = statSync(join(out, 'etc/f'));
    expect([st.uid, st.gid, st.mode & 0o7777]).toEqual([5, 6, 0o4755]);
    expect(statSync(join(out, 'etc')).mode & 0o777).toBe(0o700);
    expect(statSync(join(out, 'etc')).uid).toBe(12);
    expect(readlinkSync(join(out, 'etc/l'))).toBe('/etc/f');
    expect(statSync(join(out, 'etc/h')).ino).toBe(st.ino);
  });

  it('is the same tree GNU tar extracts', () => {
    const src = join(dir, 'src');
    execFileSync('sh', ['-c', `mkdir -p ${src}/a/b && echo x > ${src}/a/b/c && ln -s ../a ${src}/a/l && chmod 0750 ${src}/a && chown 7:8 ${src}/a/b/c`]);
    execFileSync('tar', ['--numeric-owner', '-C', src, '-cf', join(dir, 'g.tar'), '.']);
    extractTar(join(dir, 'g.tar'), join(dir, 'out'));
    const list = (root: string) => execFileSync('sh', ['-c', `cd ${root} && find . -printf '%p %y %m %U:%G %l\\n' | sort`], { encoding: 'utf8' });
    expect(list(join(dir, 'out'))).toBe(list(src));
  });

  it('refuses an absolute member, a .. member, and writing through a symlink', () => {
    expect(() => extract([{ name: '/etc/dm-evil', data: 'x' }])).toThrow(ImportError);
    expect(() => extract([{ name: 'a/../../dm-evil', data: 'x' }])).toThrow(/'\.\.'/);
    // a symlink to the outside, then a file "inside" it
    const outside = join(dir, 'outside');
    mkdirSync(outside);
    expect(() => extract([{ name: 'esc', type: '2', linkname: outside }, { name: 'esc/pwned', data: 'x' }])).toThrow(/through the symlink/);
    expect(existsSync(join(outside, 'pwned'))).toBe(false);
    // a symlink member, then a file of the same name: the link is replaced, the target untouched
    writeFileSync(join(outside, 'victim'), 'safe');
    extract([{ name: 'v', type: '2', linkname: join(outside, 'victim') }, { name: 'v', data: 'over' }]);
    expect(readFileSync(join(outside, 'victim'), 'utf8')).toBe('safe');
    expect(lstatSync(join(dir, 'out/v')).isFile()).toBe(true);
    // a hard link to a file outside
    expect(() => extract([{ name: 'hl', type: '1', linkname: '../outside/victim' }])).toThrow(ImportError);
    expect(() => extract([{ name: 'hl2', type: '1', linkname: join(outside, 'victim').slice(1) }])).toThrow(/not a file extracted before/);
  });

  it('refuses a damaged archive', () => {
    const t = buildTar([{ name: 'f', data: 'x' }]);
    t[10] = 0x41;
    writeFileSync(join(dir, 'bad.tar'), t);
    expect(() => extractTar(join(dir, 'bad.tar'), join(dir, 'out'))).toThrow(/checksum/);
  });
});
