/**
 * --set-credential= and --load-credential= side by side with systemd-nspawn 252 (parse_argv() and
 * setup_credentials(), src/nspawn/nspawn.c): both tools run the same probe in the same busybox tree. What the
 * container sees must match: $CREDENTIALS_DIRECTORY, the mount at /run/host/credentials (a read-only ramfs, its
 * per-mount and superblock options), each file's mode, owner, size and bytes (escapes and NUL included), that nothing
 * can be written there; with -U the files belong to the container's root. A file, an AF_UNIX stream socket and a
 * path relative to our own $CREDENTIALS_DIRECTORY are read alike, and a missing file is refused with the same words.
 *
 * Needs root and /usr/bin/systemd-nspawn; it fails, never skips, without them.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxTree } from './helpers/busybox-tree.js';
import { makeTempDir, requireRootAndSystemdNspawn, runTool, type Tool, TOOL_ENV, TOOLS } from './helpers/containers.js';

const PROBE = [
  'echo "dir=$CREDENTIALS_DIRECTORY"',
  // 252 shows the mount twice (a propagated copy, rw per mount): the first line is the one it made
  "grep ' /run/host/credentials ' /proc/self/mountinfo | head -n 1 | sed 's/^[0-9]* [0-9]* [0-9:]* //; s/ shared:[0-9]*//; s/ master:[0-9]*//'",
  'stat -c "%a %u %g %s %n" /run/host/credentials /run/host/credentials/* 2>&1',
  'for f in /run/host/credentials/*; do echo "$f: $(od -An -tx1 "$f" | tr -s " \\n" " ")"; done',
  'if ( echo x > /run/host/credentials/new ) 2>/dev/null; then echo writable; else echo read-only; fi',
].join('\n');

let tmp: { dir: string; remove: () => string[] };
let tree: string;
let server: ChildProcess | undefined;
beforeAll(() => {
  requireRootAndSystemdNspawn();
  tmp = makeTempDir('pk-cred-');
  tree = makeBusyboxTree(join(tmp.dir, 'tree'), { probe: false });
  writeFileSync(join(tmp.dir, 'file'), 'from a file\n');
  mkdirSync(join(tmp.dir, 'creds'));
  writeFileSync(join(tmp.dir, 'creds/inner'), 'from our own credentials\n');
});
afterAll(() => {
  server?.kill('SIGKILL');
  expect(tmp.remove()).toEqual([]);
});

interface Seen {
  status: number | null;
  stdout: string;
  stderr: string;
}

async function run(tool: Tool, args: string[], env: NodeJS.ProcessEnv = TOOL_ENV): Promise<Seen> {
  // a machine name of our own: trees named "tree" are common, and a name's scope is taken while it runs
  const r = await runTool(tool, ['-q', '-M', 'pk-cred', '-D', tree, ...args, '/bin/sh', '-c', PROBE], { env });
  return {
    status: r.status,
    stdout: r.stdout.replace(/\r\n/g, '\n'),
    // systemd-nspawn's own noise about its propagation directory is not the container's
    stderr: r.stderr
      .split('\n')
      .filter((l) => l !== '' && !l.startsWith('Attempted to remove disk file system') && !l.startsWith('Short read while reading cgroup mode'))
      .join('\n'),
  };
}

async function both(args: string[], env?: NodeJS.ProcessEnv): Promise<Record<Tool, Seen>> {
  const seen = {} as Record<Tool, Seen>;
  for (const tool of TOOLS) seen[tool] = await run(tool, args, env);
  return seen;
}

describe('credentials as systemd-nspawn 252', () => {
  it('the test can fail: without credentials there is no directory and no variable', async () => {
    const s = await run('nspawn', []);
    expect(s.status, s.stderr).toBe(0);
    expect(s.stdout).toContain('dir=\n');
    expect(s.stdout).toContain("can't stat '/run/host/credentials'");
    const theirs = await run('systemd-nspawn', []);
    expect(s.stdout).toBe(theirs.stdout);
  });

  it('--set-credential= (C escapes, NUL) and --load-credential= of a file: a read-only ramfs, files 0400', async () => {
    const args = ['--set-credential=plain:hello', '--set-credential=esc:a\\x41\\tb\\n\\000\\u00e9\\s', '--set-credential=empty:', `--load-credential=file:${tmp.dir}/file`];
    const seen = await both(args);
    expect(seen['systemd-nspawn'].status, seen['systemd-nspawn'].stderr).toBe(0);
    expect(seen.nspawn).toEqual(seen['systemd-nspawn']);
    const out = seen.nspawn.stdout;
    expect(out).toContain('dir=/run/host/credentials\n');
    expect(out).toMatch(/^\/ \/run\/host\/credentials ro,nosuid,nodev,noexec,relatime - ramfs none ro,mode=700$/m);
    expect(out).toContain('500 0 0 0 /run/host/credentials\n');
    expect(out).toContain('400 0 0 12 /run/host/credentials/file\n');
    expect(out).toContain('/run/host/credentials/esc:  61 41 09 62 0a 00 c3 a9 20 \n');
    expect(out).toContain('read-only\n');
  });

  it('with -U the files belong to the container\'s root', async () => {
    const seen = await both(['-U', '--set-credential=k:v']);
    expect(seen['systemd-nspawn'].status, seen['systemd-nspawn'].stderr).toBe(0);
    expect(seen.nspawn).toEqual(seen['systemd-nspawn']);
    expect(seen.nspawn.stdout).toContain('400 0 0 1 /run/host/credentials/k\n');
  });

  it('--load-credential= of an AF_UNIX stream socket: connected to and read until its end', async () => {
    const sock = join(tmp.dir, 'cred.sock');
    server = spawn(process.execPath, ['-e', `require('node:net').createServer((c) => c.end('from a socket\\n')).listen(process.argv[1], () => console.log('up'))`, sock], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((ok, fail) => {
      server!.stdout!.once('data', () => ok());
      server!.once('exit', (c) => fail(new Error(`the socket server exited: ${c}`)));
    });
    const seen = await both([`--load-credential=sock:${sock}`]);
    expect(seen['systemd-nspawn'].status, seen['systemd-nspawn'].stderr).toBe(0);
    expect(seen.nspawn).toEqual(seen['systemd-nspawn']);
    expect(seen.nspawn.stdout).toContain('400 0 0 14 /run/host/credentials/sock\n');
  });

  it('a relative --load-credential= PATH is read from our own $CREDENTIALS_DIRECTORY', async () => {
    const seen = await both(['--load-credential=k:inner'], { ...TOOL_ENV, CREDENTIALS_DIRECTORY: join(tmp.dir, 'creds') });
    expect(seen['systemd-nspawn'].status, seen['systemd-nspawn'].stderr).toBe(0);
    expect(seen.nspawn).toEqual(seen['systemd-nspawn']);
    expect(seen.nspawn.stdout).toContain('400 0 0 25 /run/host/credentials/k\n');
  });

  it.each([
    [[`--load-credential=k:/nonexistent-cred-file`]],
    [['--load-credential=k:inner']],
    [['--set-credential=a/b:x']],
    [['--set-credential=k:1', '--set-credential=k:2']],
    [['--set-credential=k:bad\\']],
  ])('%j is refused with the same words', async (args) => {
    const seen = await both(args);
    expect(seen['systemd-nspawn'].status).toBe(1);
    expect(seen.nspawn.status).toBe(1);
    expect(seen.nspawn.stderr.split('\n')[0]).toBe(seen['systemd-nspawn'].stderr.split('\n')[0]);
    expect(seen.nspawn.stdout).toBe('');
  });
});
