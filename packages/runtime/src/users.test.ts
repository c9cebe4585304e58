import { describe, expect, it } from 'vitest';
import type { Tree } from './host.js';
import { resolveUser, UserError } from './users.js';

const tree = (files: Record<string, string>): Tree => ({
  root: '/t',
  resolve: () => undefined,
  readFile: (p) => files[p],
  isDirectory: () => false,
  readdir: () => [],
  lexists: () => false,
  readlink: () => undefined,
});
const t = tree({
  '/etc/passwd': 'root:x:0:0:root:/root:/bin/sh\nal:x:1000:100:Al:/home/al:/bin/sh\nbad:x:1:1:Bad:relative:/bin/sh\n',
  '/etc/group': 'users:x:100:\ntty:x:5:al\nwheel:x:10:bob, al\n',
});

describe('resolveUser', () => {
  it('root needs no lookup', () => {
    expect(resolveUser(t, 'root')).toBeUndefined();
    expect(resolveUser(t, '0')).toBeUndefined();
  });
  it('by name and by uid, with supplementary groups', () => {
    const al = { name: 'al', uid: 1000, gid: 100, home: '/home/al', shell: '/bin/sh', groups: [5, 10] };
    expect(resolveUser(t, 'al')).toEqual(al);
    expect(resolveUser(t, '1000')).toEqual(al);
  });
  it('unknown users and broken entries are clear errors', () => {
    expect(() => resolveUser(t, 'nobody')).toThrow(new UserError('Failed to resolve user nobody.'));
    expect(() => resolveUser(t, 'bad')).toThrow(/not absolute/);
    expect(() => resolveUser(tree({}), 'al')).toThrow(/etc\/passwd is missing/);
  });
});
