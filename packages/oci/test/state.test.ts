// The state directory's paths (no root needed).
import { describe, expect, it } from 'vitest';
import { LONG_ROOT_SOCKETS, startSocket } from '../src/index.js';

describe('startSocket', () => {
  it('is ROOT/ID/start.sock while that fits in a unix socket address', () => {
    expect(startSocket('/run/nspawn-oci', 'web')).toBe('/run/nspawn-oci/web/start.sock');
  });
  it('moves to LONG_ROOT_SOCKETS, named by a hash of the container directory, when ROOT/ID/start.sock is too long', () => {
    // containerd's ids are 64 hex digits: with a root of its own state directory the path passes 107 bytes
    const id = 'f'.repeat(64);
    const root = '/var/lib/some-engine/state/io.containerd.runtime.v2.task/k8s.io';
    const s = startSocket(root, id);
    expect(s).toMatch(new RegExp(`^${LONG_ROOT_SOCKETS}/[0-9a-f]{40}\\.sock$`));
    expect(Buffer.byteLength(s)).toBeLessThanOrEqual(107);
    // the same container always gets the same one, another container another one
    expect(startSocket(root, id)).toBe(s);
    expect(startSocket(root, 'e'.repeat(64))).not.toBe(s);
  });
});
