/**
 * nspawn-oci's --preserve-fds, LISTEN_FDS and --console-socket refusals, as runc has them (the console socket's
 * working path is test/oci-podman.test.ts: conmon listens on it). Root: busybox bundles under a temp directory, the
 * runtime's state under it too; every test leaves no state entry.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxBundle, NSPAWN_OCI, OCI_ENV as ENV, type BusyboxBundle } from './helpers/oci-runtime.js';

let base: BusyboxBundle['base'] | undefined;
let bundle = '';
let state = '';

beforeAll(async () => {
  ({ base, bundle, state } = await busyboxBundle('nspawn-oci-fds-'));
  writeFileSync(join(base.dir, 'three'), 'file-on-three\n');
  writeFileSync(join(base.dir, 'four'), 'file-on-four\n');
});

afterAll(async () => {
  if (!base) return;
  for (const id of existsSync(state) ? readdirSync(state) : []) await execa(NSPAWN_OCI, ['--root', state, 'delete', '-f', id], { env: ENV, reject: false });
  const left = base.remove();
  expect(left).toEqual([]);
});

function config(args: string[], terminal = false) {
  const spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
  spec.process.terminal = terminal;
  spec.process.args = args;
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec, null, 2));
}

/** Runs nspawn-oci ARGS with FDS as its 3, 4, ... (through sh, which sets ENV's LISTEN_PID to its own PID: the exec'd runtime's). */
function oci(args: string[], fds: number[], listenFds?: number): Promise<{ code: number | null; out: string }> {
  const pre = listenFds !== undefined ? `LISTEN_FDS=${listenFds} LISTEN_PID=$$ ` : '';
  const cmd = `${pre}exec "$@"`;
  return new Promise((res) => {
    const p = spawn('sh', ['-c', cmd, 'sh', NSPAWN_OCI, '--root', state, ...args], { env: ENV, stdio: ['ignore', 'pipe', 'pipe', ...fds] });
    let out = '';
    p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    p.on('close', (code) => res({ code, out }));
  });
}

const SHOW = 'cat <&3; cat <&4 2>/dev/null; echo "env=$LISTEN_FDS/$LISTEN_PID"; for n in 3 4 5 6; do [ -e /proc/1/fd/$n ] && echo "fd$n"; done; true';

describe('nspawn-oci --preserve-fds and LISTEN_FDS (runc: utils_linux.go runner.run)', () => {
  it('run --preserve-fds 2: the runtime\'s 3 and 4 are the container\'s 3 and 4, nothing after them', async () => {
    config(['sh', '-c', SHOW]);
    const a = openSync(join(base!.dir, 'three'), 'r');
    const b = openSync(join(base!.dir, 'four'), 'r');
    try {
      const r = await oci(['run', '-b', bundle, '--preserve-fds', '2', 'f1'], [a, b]);
      expect(r.code, r.out).toBe(0);
      expect(r.out).toContain('file-on-three');
      expect(r.out).toContain('file-on-four');
      expect(r.out).toContain('env=/');
      expect(r.out.match(/^fd\d$/gm)).toEqual(['fd3', 'fd4']);
    } finally {
      closeSync(a);
      closeSync(b);
    }
    expect(readdirSync(state)).toEqual([]);
  });

  it('without --preserve-fds the runtime\'s descriptors stay out', async () => {
    config(['sh', '-c', SHOW]);
    const a = openSync(join(base!.dir, 'three'), 'r');
    try {
      const r = await oci(['run', '-b', bundle, 'f2'], [a]);
      expect(r.code, r.out).toBe(0);
      expect(r.out).not.toContain('file-on-three');
      expect(r.out.match(/^fd\d$/gm)).toBeNull();
    } finally {
      closeSync(a);
    }
  });

  it('create --preserve-fds 1, then start: the descriptor reaches the container through the monitor', async () => {
    config(['sh', '-c', `${SHOW} > /tmp/out; cat /tmp/out >&2`]);
    const a = openSync(join(base!.dir, 'three'), 'r');
    const log = openSync(join(base!.dir, 'create.log'), 'w');
    try {
      // the container's stderr is create's: a file, read once the container has ended
      const p = spawn('sh', ['-c', 'exec "$@"', 'sh', NSPAWN_OCI, '--root', state, 'create', '-b', bundle, '--preserve-fds', '1', 'f3'], { env: ENV, stdio: ['ignore', log, log, a] });
      const code = await new Promise<number | null>((r) => p.on('close', r));
      expect(code, readFileSync(join(base!.dir, 'create.log'), 'utf8')).toBe(0);
      expect((await execa(NSPAWN_OCI, ['--root', state, 'start', 'f3'], { env: ENV })).exitCode).toBe(0);
      for (let i = 0; i < 100 && !/"status": "stopped"/.test((await execa(NSPAWN_OCI, ['--root', state, 'state', 'f3'], { env: ENV })).stdout); i++)
        await new Promise((r) => setTimeout(r, 100));
      expect((await execa(NSPAWN_OCI, ['--root', state, 'delete', 'f3'], { env: ENV })).exitCode).toBe(0);
      const out = readFileSync(join(base!.dir, 'create.log'), 'utf8');
      expect(out).toContain('file-on-three');
      expect(out.match(/^fd\d$/gm)).toEqual(['fd3']);
    } finally {
      closeSync(a);
      closeSync(log);
    }
    expect(readdirSync(state)).toEqual([]);
  });

  it('LISTEN_FDS for the runtime\'s PID: its descriptors go first, LISTEN_FDS=N and LISTEN_PID=1 in the container, --preserve-fds after them', async () => {
    config(['sh', '-c', SHOW]);
    const a = openSync(join(base!.dir, 'three'), 'r');
    const b = openSync(join(base!.dir, 'four'), 'r');
    try {
      const r = await oci(['run', '-b', bundle, '--preserve-fds', '1', 'f4'], [a, b], 1);
      expect(r.code, r.out).toBe(0);
      expect(r.out).toContain('env=1/1');
      expect(r.out).toContain('file-on-three');
      expect(r.out).toContain('file-on-four');
      expect(r.out.match(/^fd\d$/gm)).toEqual(['fd3', 'fd4']);
      // LISTEN_PID of another process: not ours, nothing passed
      const other = await oci(['run', '-b', bundle, 'f5'], [a], undefined);
      expect(other.out).toContain('env=/');
    } finally {
      closeSync(a);
      closeSync(b);
    }
  });

  it('a preserved descriptor that is not open is refused with runc\'s words, nothing left', async () => {
    config(['true']);
    const r = await oci(['create', '-b', bundle, '--preserve-fds', '40', 'f6'], []);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/unable to stat preserved-fd \d+ \(of 40\)/);
    expect(readdirSync(state)).toEqual([]);
  });
});

describe('nspawn-oci --console-socket refusals (runc\'s words)', () => {
  it('a terminal without a console socket for a detached container', async () => {
    config(['true'], true);
    const r = await oci(['create', '-b', bundle, 'c1'], []);
    expect(r.code).toBe(1);
    expect(r.out).toContain('cannot allocate tty if runc will detach without setting console socket');
    expect(readdirSync(state)).toEqual([]);
  });
  it('a console socket without a terminal', async () => {
    config(['true'], false);
    const r = await oci(['create', '-b', bundle, '--console-socket', join(base!.dir, 'sock'), 'c2'], []);
    expect(r.code).toBe(1);
    expect(r.out).toContain('cannot use console socket if runc will not detach or allocate tty');
    expect(readdirSync(state)).toEqual([]);
  });
  it('a console socket nobody listens on: the create fails naming it, nothing left', async () => {
    config(['true'], true);
    const r = await oci(['create', '-b', bundle, '--console-socket', join(base!.dir, 'nosock'), 'c3'], []);
    expect(r.code).toBe(1);
    expect(r.out).toContain(`--console-socket ${join(base!.dir, 'nosock')}`);
    expect(readdirSync(state)).toEqual([]);
  });
});
