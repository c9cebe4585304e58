/**
 * Credentials through the engine, as root on the real kernel: prepareContainer() reads a file and an AF_UNIX stream
 * socket (nodeCredentialReader: a real server in another process), the plan carries any bytes (NUL, 0xff) to the
 * helper, which writes them in a read-only ramfs at /run/host/credentials; a blob op never replaces what is there.
 * (Side by side with systemd-nspawn 252: apps/cli/test/compare-credentials.test.ts.)
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Settings } from '@nspawn/settings';
import { type ContainerExtension, loadCredentials, nodeCredentialReader, nodePrepareEnv, nodeTree, prepareContainer, runContainer } from '../src/index.js';
import { captureFiles, makeTree, requireRoot } from './helpers.js';

beforeAll(requireRoot);

const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

function tree() {
  const t = makeTree('nspawn-test-cred-');
  cleanups.push(t.cleanup);
  return t;
}

async function run(t: { dir: string; root: string }, settings: Settings) {
  const cap = captureFiles(t.dir);
  cleanups.push(cap.close);
  const prepared = prepareContainer({ consoleMode: 'pipe', ...settings, directory: t.root }, nodePrepareEnv(nodeTree));
  const code = await runContainer(prepared, { log: () => {} }, undefined, cap.stdio);
  return { code, ...cap.read() };
}

/** a stream socket server in another process (the reader blocks this one) that sends DATA and closes */
async function server(path: string, data: string): Promise<ChildProcess> {
  const c = spawn(process.execPath, ['-e', `require('node:net').createServer((s) => s.end(process.argv[2])).listen(process.argv[1], () => console.log('up'))`, path, data], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  cleanups.push(() => c.kill('SIGKILL'));
  await new Promise<void>((ok, fail) => {
    c.stdout!.once('data', () => ok());
    c.once('exit', (code) => fail(new Error(`socket server exited: ${code}`)));
  });
  return c;
}

describe('credentials through the engine', () => {
  it('reads an AF_UNIX stream socket until its end, and refuses a socket that nobody serves', async () => {
    const t = tree();
    const sock = join(t.dir, 'c.sock');
    await server(sock, 'socket data');
    expect(loadCredentials([{ id: 's', path: sock, socket: true }], nodeCredentialReader)).toEqual([{ id: 's', data: new Uint8Array(Buffer.from('socket data')) }]);
    expect(() => loadCredentials([{ id: 's', path: join(t.dir, 'none.sock'), socket: true }], nodeCredentialReader)).toThrow(/Failed to read credential '.*none\.sock': No such file or directory/);
  });

  it('writes any bytes into a read-only ramfs, files 0400 in a 0500 directory, with $CREDENTIALS_DIRECTORY', async () => {
    const t = tree();
    writeFileSync(join(t.dir, 'file'), Buffer.from([0, 1, 0xff, 10]));
    const r = await run(t, {
      credentials: [
        { id: 'bin', data: new Uint8Array([0xff, 0, 0x41]) },
        { id: 'f', path: join(t.dir, 'file'), socket: true },
      ],
      parameters: [
        '/bin/sh',
        '-c',
        'echo "$CREDENTIALS_DIRECTORY"; stat -c "%a %u %n" /run/host/credentials /run/host/credentials/*; od -An -tx1 /run/host/credentials/bin /run/host/credentials/f; grep " /run/host/credentials " /proc/self/mountinfo | cut -d" " -f6-; echo x > /run/host/credentials/new 2>/dev/null || echo refused',
      ],
    });
    expect(r.code, r.err).toBe(0);
    const lines = r.out.split('\n').map((l) => l.trim());
    expect(lines.slice(0, 4)).toEqual(['/run/host/credentials', '500 0 /run/host/credentials', '400 0 /run/host/credentials/bin', '400 0 /run/host/credentials/f']);
    expect(lines[4]).toBe('ff 00 41 00 01 ff 0a');
    expect(lines[5]).toBe('ro,nosuid,nodev,noexec,relatime - ramfs none ro,mode=700');
    expect(lines[6]).toBe('refused');
  });

  it('a blob op never replaces a file that is there (O_EXCL), nor writes through a symlink: the start fails', async () => {
    for (const second of ['file', 'symlink'] as const) {
      const t = tree();
      const cap = captureFiles(t.dir);
      cleanups.push(cap.close);
      const prepared = prepareContainer(
        { consoleMode: 'pipe', directory: t.root, parameters: ['/bin/true'], credentials: [{ id: 'a', data: new Uint8Array([1]) }] },
        nodePrepareEnv(nodeTree),
      );
      // a stand-in extension puts a file or a symlink where the blob goes, before the blob op
      const twist: ContainerExtension = {
        name: 'twist',
        plan: (_run, plan) => {
          const at = plan.ops.findIndex((o) => o.kind === 'blob');
          plan.ops.splice(
            at,
            0,
            second === 'file'
              ? { kind: 'write', target: '/run/host/credentials/a', data: 'there', mode: 0o644 }
              : { kind: 'symlink', source: '/etc/passwd', target: '/run/host/credentials/a' },
          );
        },
      };
      const log: string[] = [];
      const code = await runContainer(prepared, { log: (l) => log.push(l) }, undefined, cap.stdio, [twist]);
      const err = [...log, cap.read().err].join('\n');
      expect(code, second).toBe(1);
      expect(err, second).toContain('Failed to create /run/host/credentials/a: File exists');
      expect(readFileSync(join(t.root, 'etc/passwd'), 'utf8')).toContain('root:');
    }
  });
});
