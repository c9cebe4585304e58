/**
 * Credentials (--set-credential=, --load-credential=) as systemd-nspawn 252 passes them: read on the host before the
 * start (parse_argv(): read_full_file_full() with READ_FULL_FILE_SECURE, an absolute path may be an AF_UNIX stream
 * socket to connect to), then written by the helper into a ramfs at /run/host/credentials (setup_credentials():
 * mounted nosuid,nodev,noexec with mode=0700, each file 0400, the directory then 0500 and the mount and its
 * superblock read-only), owned by the container's root, with $CREDENTIALS_DIRECTORY pointing there.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { CredentialSetting } from '@nspawn/settings';
import { ContainerError } from './errors.js';
import { MS, type Op } from './protocol.js';

export const CREDENTIALS_DIRECTORY = '/run/host/credentials';

/** A credential ready for the container: its ID (a valid file name) and its bytes. */
export interface Credential {
  id: string;
  data: Uint8Array;
}

/**
 * READ_FULL_BYTES_MAX (64 MiB - 1): read_full_file_full() without a size refuses with E2BIG once its buffer has
 * grown to it without reaching the end, so a credential is shorter than this
 */
export const CREDENTIAL_SIZE_MAX = 64 * 1024 * 1024 - 1;

/** How a credential's file or socket is read (tests give their own). */
export interface CredentialReader {
  /** the whole file; throws an errno error (code ENOENT, ENXIO for a socket, ...) */
  readFile(path: string): Uint8Array;
  /** connect to the AF_UNIX stream socket at PATH, shut down our side, read until EOF */
  readSocket(path: string): Uint8Array;
}

/**
 * Reads a socket in a child process: prepareContainer() is synchronous, and a socket is read rarely. A peer that never
 * closes its side fails after a minute (252 would wait for ever).
 */
const SOCKET_READER = `
const c = require('node:net').createConnection({ path: process.argv[1] });
const out = [];
let n = 0;
c.on('connect', () => c.end());
c.on('data', (b) => { n += b.length; if (n >= ${CREDENTIAL_SIZE_MAX}) { process.stderr.write('E2BIG'); process.exit(3); } out.push(b); });
c.on('end', () => process.stdout.write(Buffer.concat(out)));
c.on('error', (e) => { process.stderr.write(String(e.code || e.message)); process.exit(2); });
`;

const errnoError = (code: string): Error => Object.assign(new Error(code), { code });

export const nodeCredentialReader: CredentialReader = {
  readFile: (path) => readFileSync(path),
  readSocket: (path) => {
    const r = spawnSync(process.execPath, ['-e', SOCKET_READER, path], { maxBuffer: CREDENTIAL_SIZE_MAX, timeout: 60_000 });
    if (r.error) throw r.error;
    if (r.status !== 0) throw errnoError(r.stderr.toString().trim() || 'EIO');
    return new Uint8Array(r.stdout);
  },
};

const STRERROR: Readonly<Record<string, string>> = {
  ENOENT: 'No such file or directory',
  EACCES: 'Permission denied',
  EISDIR: 'Is a directory',
  ENOTDIR: 'Not a directory',
  ELOOP: 'Too many levels of symbolic links',
  E2BIG: 'Argument list too long',
  ECONNREFUSED: 'Connection refused',
  ENXIO: 'No such device or address',
  EIO: 'Input/output error',
  ETIMEDOUT: 'Connection timed out',
  ENOTSOCK: 'Socket operation on non-socket',
};

/**
 * The credentials' bytes, in order: a file read whole (shorter than CREDENTIAL_SIZE_MAX), a socket (only where the
 * path was given absolute) read until its end. Throws 252's "Failed to read credential 'PATH': ERROR".
 */
export function loadCredentials(list: readonly CredentialSetting[], reader: CredentialReader = nodeCredentialReader): Credential[] {
  return list.map((c) => {
    if ('data' in c) return { id: c.id, data: c.data };
    let data: Uint8Array;
    try {
      try {
        data = reader.readFile(c.path);
      } catch (e) {
        // open() of a socket fails with ENXIO: READ_FULL_FILE_CONNECT_SOCKET connects to it instead
        if ((e as NodeJS.ErrnoException).code !== 'ENXIO' || !c.socket) throw e;
        data = reader.readSocket(c.path);
      }
      if (data.byteLength >= CREDENTIAL_SIZE_MAX) throw errnoError('E2BIG');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? '';
      throw new ContainerError(`Failed to read credential '${c.path}': ${STRERROR[code] ?? (code || (e as Error).message)}`);
    }
    return { id: c.id, data };
  });
}

/**
 * setup_credentials()'s steps for the helper, the blobs numbered from FIRSTBLOB: /run/host/credentials made 0700, a
 * ramfs on it, each credential a new file 0400 (owned by the container's root: the helper runs them as that root),
 * the directory 0500, then the mount and the superblock read-only. Nothing without credentials.
 */
export function credentialOps(credentials: readonly Credential[], firstBlob = 0): { ops: Op[]; blobs: Uint8Array[] } {
  if (credentials.length === 0) return { ops: [], blobs: [] };
  const api = MS.NOSUID | MS.NOEXEC | MS.NODEV;
  const ops: Op[] = [
    { kind: 'mkdir', target: CREDENTIALS_DIRECTORY, mode: 0o700 },
    { kind: 'mount', source: 'none', target: CREDENTIALS_DIRECTORY, fstype: 'ramfs', mountFlags: api, data: 'mode=0700' },
  ];
  credentials.forEach((c, i) => ops.push({ kind: 'blob', target: `${CREDENTIALS_DIRECTORY}/${c.id}`, dev: firstBlob + i, mode: 0o400 }));
  ops.push(
    { kind: 'chmod', target: CREDENTIALS_DIRECTORY, mode: 0o500 },
    { kind: 'remount', target: CREDENTIALS_DIRECTORY, mountFlags: MS.BIND | MS.RDONLY | api },
    { kind: 'remount', target: CREDENTIALS_DIRECTORY, mountFlags: MS.RDONLY | api, data: 'mode=0500' },
  );
  return { ops, blobs: credentials.map((c) => c.data) };
}
