import { describe, expect, it } from 'vitest';
import { CREDENTIAL_SIZE_MAX, type CredentialReader, credentialOps, loadCredentials } from './credentials.js';
import { planContainer } from './plan.js';
import { MS } from './protocol.js';
import { bareHost, baseConfig, emptyTree } from './test/fixtures.js';

const enc = (s: string) => new Uint8Array(Buffer.from(s));
const errno = (code: string) => Object.assign(new Error(code), { code });

/** a reader over FILES (path -> bytes or an errno code) and SOCKETS (path -> bytes) */
function reader(files: Record<string, Uint8Array | string>, sockets: Record<string, Uint8Array> = {}): CredentialReader & { socketReads: string[] } {
  const socketReads: string[] = [];
  return {
    socketReads,
    readFile: (p) => {
      const f = files[p];
      if (f === undefined) throw errno('ENOENT');
      if (typeof f === 'string') throw errno(f);
      return f;
    },
    readSocket: (p) => {
      socketReads.push(p);
      const s = sockets[p];
      if (!s) throw errno('ECONNREFUSED');
      return s;
    },
  };
}

describe('loadCredentials', () => {
  it('keeps set values and reads files, in order', () => {
    const r = reader({ '/f': enc('file\n') });
    expect(loadCredentials([{ id: 'a', data: enc('x') }, { id: 'b', path: '/f', socket: true }], r)).toEqual([
      { id: 'a', data: enc('x') },
      { id: 'b', data: enc('file\n') },
    ]);
  });
  it('connects to an AF_UNIX socket given by an absolute path (open() said ENXIO)', () => {
    const r = reader({ '/s': 'ENXIO' }, { '/s': enc('from socket') });
    expect(loadCredentials([{ id: 'a', path: '/s', socket: true }], r)).toEqual([{ id: 'a', data: enc('from socket') }]);
    expect(r.socketReads).toEqual(['/s']);
  });
  it('does not connect for a path inside $CREDENTIALS_DIRECTORY (252: only absolute paths get READ_FULL_FILE_CONNECT_SOCKET)', () => {
    const r = reader({ '/c/s': 'ENXIO' }, { '/c/s': enc('x') });
    expect(() => loadCredentials([{ id: 'a', path: '/c/s', socket: false }], r)).toThrow("Failed to read credential '/c/s': No such device or address");
    expect(r.socketReads).toEqual([]);
  });
  it.each([
    ['ENOENT', 'No such file or directory'],
    ['EACCES', 'Permission denied'],
    ['EISDIR', 'Is a directory'],
  ])('%s: 252 words', (code, words) => {
    expect(() => loadCredentials([{ id: 'a', path: '/x', socket: true }], reader({ '/x': code }))).toThrow(`Failed to read credential '/x': ${words}`);
  });
  it('refuses READ_FULL_BYTES_MAX bytes or more', () => {
    const big = new Uint8Array(CREDENTIAL_SIZE_MAX);
    expect(() => loadCredentials([{ id: 'a', path: '/x', socket: true }], reader({ '/x': big }))).toThrow("Failed to read credential '/x': Argument list too long");
  });
});

describe('credentialOps (setup_credentials())', () => {
  it('nothing without credentials', () => expect(credentialOps([])).toEqual({ ops: [], blobs: [] }));
  it('a ramfs 0700, files 0400 from the blobs, the directory 0500, then read-only mount and superblock', () => {
    const { ops, blobs } = credentialOps([{ id: 'a', data: enc('1') }, { id: 'b.c', data: new Uint8Array([0, 255]) }]);
    const api = MS.NOSUID | MS.NOEXEC | MS.NODEV;
    expect(ops).toEqual([
      { kind: 'mkdir', target: '/run/host/credentials', mode: 0o700 },
      { kind: 'mount', source: 'none', target: '/run/host/credentials', fstype: 'ramfs', mountFlags: api, data: 'mode=0700' },
      { kind: 'blob', target: '/run/host/credentials/a', dev: 0, mode: 0o400 },
      { kind: 'blob', target: '/run/host/credentials/b.c', dev: 1, mode: 0o400 },
      { kind: 'chmod', target: '/run/host/credentials', mode: 0o500 },
      { kind: 'remount', target: '/run/host/credentials', mountFlags: MS.BIND | MS.RDONLY | api },
      { kind: 'remount', target: '/run/host/credentials', mountFlags: MS.RDONLY | api, data: 'mode=0500' },
    ]);
    expect(blobs).toEqual([enc('1'), new Uint8Array([0, 255])]);
  });
});

describe('the plan with credentials', () => {
  const rnd = { hex128: () => '0'.repeat(32) };
  it('mounts them before /run/host goes read-only, passes the blobs and sets $CREDENTIALS_DIRECTORY after NOTIFY_SOCKET', () => {
    const plan = planContainer(baseConfig({ credentials: [{ id: 'k', data: enc('v') }] }), bareHost(), emptyTree(), rnd);
    const at = plan.ops.findIndex((o) => o.kind === 'blob');
    const ro = plan.ops.findIndex((o) => o.kind === 'remount' && o.target === '/run/host');
    expect(at).toBeGreaterThan(0);
    expect(ro).toBeGreaterThan(at);
    expect(plan.ops[at]).toEqual({ kind: 'blob', target: '/run/host/credentials/k', dev: 0, mode: 0o400 });
    expect(plan.blobs).toEqual([enc('v')]);
    const n = plan.env.indexOf('NOTIFY_SOCKET=/run/host/notify');
    expect(plan.env[n + 1]).toBe('CREDENTIALS_DIRECTORY=/run/host/credentials');
  });
  it('has no credential directory, blob or variable without them', () => {
    const plan = planContainer(baseConfig(), bareHost(), emptyTree(), rnd);
    expect(plan.ops.some((o) => o.target.startsWith('/run/host/credentials'))).toBe(false);
    expect(plan.blobs).toBeUndefined();
    expect(plan.env.some((e) => e.startsWith('CREDENTIALS_DIRECTORY='))).toBe(false);
  });
});
