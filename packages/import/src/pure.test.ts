import { describe, expect, it } from 'vitest';
import { keptXattr, parsePaxRecords, safeComponents } from './index.js';

describe('safeComponents', () => {
  it('splits, drops . and empty components, keeps bytes', () => {
    expect(safeComponents('./a//b/./c/').map(String)).toEqual(['a', 'b', 'c']);
    expect(safeComponents('./')).toEqual([]);
    expect(safeComponents(Buffer.from([0x61, 0xff, 0x2f, 0x62]))).toEqual([Buffer.from([0x61, 0xff]), Buffer.from('b')]);
  });
  it('refuses absolute names, .., NUL, and names past PATH_MAX or NAME_MAX, in one line naming the member', () => {
    expect(() => safeComponents('/etc/passwd', "member '/etc/passwd'", 'x.tar')).toThrow("Refusing x.tar: member '/etc/passwd' has an absolute path");
    expect(() => safeComponents('a/../../b')).toThrow(/climbs out with '\.\.'/);
    expect(() => safeComponents('..')).toThrow(/climbs out/);
    expect(() => safeComponents('a\0b')).toThrow(/NUL byte/);
    expect(() => safeComponents(`a/${'n'.repeat(256)}`)).toThrow(/component of 256 bytes, longer than NAME_MAX \(255\)/);
    expect(() => safeComponents(Array.from({ length: 21 }, () => 'n'.repeat(200)).join('/'))).toThrow(/name of 4220 bytes, longer than PATH_MAX \(4096\)/);
    expect(safeComponents(Array.from({ length: 20 }, () => 'n'.repeat(203)).join('/'))).toHaveLength(20); // 4079 bytes
  });
  it('a component of ... or .x is a name, not a climb', () => {
    expect(safeComponents('.../.x/..y').map(String)).toEqual(['...', '.x', '..y']);
  });
});

describe('parsePaxRecords', () => {
  it('keeps binary values and repeated keys', () => {
    const rec = (k: string, v: Buffer) => {
      const body = Buffer.concat([Buffer.from(` ${k}=`), v, Buffer.from('\n')]);
      let len = body.length + 1;
      while (String(len).length + body.length !== len) len++;
      return Buffer.concat([Buffer.from(String(len)), body]);
    };
    const cap = Buffer.from([1, 0, 0, 2, 0x80, 0x20, 0, 0, 0xff, 0x0a, 0x3d]);
    const b = Buffer.concat([rec('SCHILY.xattr.security.capability', cap), rec('GNU.sparse.offset', Buffer.from('1')), rec('GNU.sparse.offset', Buffer.from('2'))]);
    const r = parsePaxRecords(b, 'x');
    expect(r[0]![0]).toBe('SCHILY.xattr.security.capability');
    expect(r[0]![1].equals(cap)).toBe(true);
    expect(r.slice(1).map(([k, v]) => `${k}=${v}`)).toEqual(['GNU.sparse.offset=1', 'GNU.sparse.offset=2']);
  });
  it('refuses a record whose length lies', () => {
    expect(() => parsePaxRecords(Buffer.from('99 path=a\n'), 'a.tar')).toThrow('a.tar: an invalid PAX record');
    expect(() => parsePaxRecords(Buffer.from('4 x=\n'), 'a.tar')).toThrow(/invalid PAX record/);
    expect(() => parsePaxRecords(Buffer.from('8 pathab'), 'a.tar')).toThrow(/invalid PAX record/);
  });
});

describe('keptXattr', () => {
  it('keeps user, trusted (not overlayfs\'s), file capabilities and POSIX ACLs', () => {
    for (const k of ['user.x', 'trusted.t', 'security.capability', 'system.posix_acl_access', 'system.posix_acl_default']) expect(keptXattr(k), k).toBe(true);
    for (const k of ['trusted.overlay.opaque', 'trusted.overlay.redirect', 'security.selinux', 'security.ima', 'system.nfs4_acl']) expect(keptXattr(k), k).toBe(false);
  });
});
