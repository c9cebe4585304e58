/**
 * Hand-over (src/handoff.ts, native/handoff.c) for real: a process that plans a container and becomes the helper,
 * with its exit status, end messages, signals and the scope's removal; and a hand-over that fails before the exec.
 */
import { spawn } from 'node:child_process';
import { execa } from 'execa';
import { existsSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  cgroupLayoutFromMountinfo,
  ContainerError,
  handoffContainer,
  machineHierarchies,
  machineScope,
  NSPAWN_SLICE_MARKER,
  nodePrepareEnv,
  nodeTree,
  prepareContainer,
  runContainer,
  slicePathLevels,
} from '@nspawn/runtime';
import { storageExtension } from '../src/storage.js';
import { makeTree, mountsUnder, requireRoot, REPO } from './helpers.js';
import { decoded } from '../../runtime/src/test/decode.js';

beforeAll(requireRoot);
const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

const scopeDir = (name: string) => join('/sys/fs/cgroup/unified', machineScope(name).path);

/** A script that prepares SETTINGS and hands over (what apps/cli/src/nspawn.ts does). */
function script(dir: string, settings: object): string {
  const file = join(dir, 'handoff.mjs');
  writeFileSync(
    file,
    `import * as rt from ${JSON.stringify(join(REPO, 'packages/runtime/dist/index.js'))};
import * as assembly from ${JSON.stringify(join(REPO, 'packages/assembly/dist/index.js'))};
const p = rt.prepareContainer(${JSON.stringify(settings)}, rt.nodePrepareEnv(rt.nodeTree));
rt.handoffContainer(p, { extensions: assembly.defaultExtensions() });
console.error('not handed over');
process.exit(99);
`,
  );
  return file;
}

describe('hand-over', () => {
  it('the helper in our place: exit status, end message, the scope removed', async () => {
    const t = makeTree();
    cleanups.push(t.cleanup);
    const name = 'ho-exit';
    // (read-only: a pty forwarded to our stdout; pipe mode would be quiet)
    const r = await execa(process.execPath, [script(t.dir, { directory: t.root, machineName: name, consoleMode: 'read-only', parameters: ['/bin/sh', '-c', 'echo out; exit 7'] })], { input: '', reject: false, stripFinalNewline: false });
    expect(r.stdout).toMatch(/^out\r?\n$/);
    expect(r.stderr).toContain(`Spawning container ${name} on ${t.root}.`);
    expect(r.stderr).toContain(`Container ${name} failed with error code 7.`);
    expect(r.stderr).not.toContain('not handed over');
    expect(r.exitCode).toBe(7);
    expect(existsSync(scopeDir(name))).toBe(false);
  });
  it('SIGTERM with --kill-signal: the halt message, the signal to PID 1, its end', async () => {
    const t = makeTree();
    cleanups.push(t.cleanup);
    const name = 'ho-term';
    // a PID 1 that ends on SIGUSR1 with 3 (PID 1 gets only the signals it handles)
    const child = spawn(process.execPath, [script(t.dir, { directory: t.root, machineName: name, consoleMode: 'pipe', killSignal: 10, parameters: ['/bin/sh', '-c', 'trap "exit 3" USR1; echo up; while :; do sleep 0.05; done'] })], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    await new Promise<void>((res) => child.stdout.once('data', () => res()));
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((res) => child.on('close', (c) => res(c)));
    expect(err).toContain('Trying to halt container. Send SIGTERM again to trigger immediate termination.');
    expect(code).toBe(3);
    expect(existsSync(scopeDir(name))).toBe(false);
  });
  it('a failure before the exec leaves no scope, and a start error in the helper is said with exit 1', async () => {
    const t = makeTree();
    cleanups.push(t.cleanup);
    const name = 'ho-fail';
    const p = prepareContainer({ directory: t.root, machineName: name, consoleMode: 'pipe', parameters: ['/bin/true'] }, nodePrepareEnv(nodeTree));
    let argv: string[] = [];
    let sent: Uint8Array | undefined;
    let fdOpen = false;
    const proc = {
      execve: ((_f: string, a: string[]) => {
        argv = a;
        fdOpen = (() => {
          try {
            fstatSync(Number(a[2]));
            return true;
          } catch {
            return false;
          }
        })();
        throw new Error('E2BIG');
      }) as never,
      // the plan's descriptor: a real one (the hand-over closes it when the exec fails)
      planFd: (data: Uint8Array) => {
        sent = data;
        return openSync('/dev/null', 'r');
      },
      pid: process.pid,
      execPath: '/usr/bin/node',
      execArgv: [],
      argv: ['/usr/bin/node', '/x/nspawn', '-D', t.root, '/bin/true'],
      env: {},
    };
    const markerBefore = existsSync(NSPAWN_SLICE_MARKER);
    expect(() => handoffContainer(p, { proc, hooks: { log: () => {} } })).toThrow(ContainerError);
    expect(existsSync(scopeDir(name))).toBe(false);
    // nothing was made, so no mark that an nspawn made machine.slice either
    if (!markerBefore) expect(existsSync(NSPAWN_SLICE_MARKER)).toBe(false);
    // the plan is not on the command line: a descriptor the helper reads it from, closed again after the failed exec
    expect(argv).toEqual(['nspawn-helper', '--handoff', expect.stringMatching(/^\d+$/)]);
    expect(fdOpen).toBe(true);
    expect(() => fstatSync(Number(argv[2]))).toThrow(/EBADF/);
    // a reboot starts nspawn again as it was started, with the same UUID
    const plan = decoded(sent!) as { handoff: { reexec: string[] } };
    expect(plan.handoff.reexec).toEqual(['/usr/bin/node', '/x/nspawn', `--uuid=${p.config.uuid}`, '-D', t.root, '/bin/true']);

    const r = await execa(process.execPath, [script(t.dir, { directory: t.root, machineName: name, consoleMode: 'pipe', parameters: ['/no/such/program'] })], { input: '', reject: false, stripFinalNewline: false });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/no\/such\/program/);
    expect(existsSync(scopeDir(name))).toBe(false);
  });
});

describe('a slice gone between the plan and the helper (ho-)', () => {
  // --slice= of this test's own (its path: ho.slice/ho-race.slice), in every hierarchy the machine's cgroup is made in
  const SLICE = 'ho-race.slice';
  const mounts = () => machineHierarchies(cgroupLayoutFromMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'))).map((h) => h.mount);
  const levels = slicePathLevels('ho.slice/ho-race.slice');
  const slices = () => mounts().flatMap((m) => levels.map((l) => join(m, l)));
  /** the slices made by the test (removed again after it, innermost first, whatever is left of them) */
  const makeSlices = () => {
    const made = slices();
    cleanups.push(() => {
      for (const d of [...made].reverse()) if (existsSync(d)) rmdirSync(d);
    });
    for (const d of made) mkdirSync(d);
    return made;
  };
  /** nspawn with --slice=SLICE handed over, the slice's directories removed just before the exec (after the plan) */
  const start = (dir: string, name: string, root: string, cmd: string) => {
    const file = join(dir, 'slice-race.mjs');
    writeFileSync(
      file,
      `import { rmdirSync } from 'node:fs';
import * as rt from ${JSON.stringify(join(REPO, 'packages/runtime/dist/index.js'))};
import * as assembly from ${JSON.stringify(join(REPO, 'packages/assembly/dist/index.js'))};
const p = await assembly.prepareStart(${JSON.stringify({ directory: root, machineName: name, slice: SLICE, consoleMode: 'pipe', parameters: ['/bin/sh', '-c', cmd] })});
const real = rt.nodeHandoffProcess();
const proc = { ...real, execve(file, args, env) {
  for (const d of ${JSON.stringify([...slices()].reverse())}) rmdirSync(d);
  console.error('slices removed');
  return real.execve(file, args, env);
} };
await rt.handoffContainer(p, { extensions: assembly.defaultExtensions(), proc });
console.error('not handed over');
process.exit(99);
`,
    );
    return execa(process.execPath, [file], { input: '', reject: false });
  };
  const scopes = (name: string) => mounts().map((m) => join(m, machineScope(name, 'ho.slice/ho-race.slice').path));

  it('the helper makes the slice again for its scope and removes it after the end', async () => {
    const t = makeTree('ho-race-');
    cleanups.push(t.cleanup);
    makeSlices();
    const r = await start(t.dir, 'ho-race', t.root, 'echo in; exit 4');
    expect(r.stderr).toContain('slices removed');
    expect(r.stderr).not.toContain('not handed over');
    expect(r.stdout).toBe('in');
    expect(r.exitCode).toBe(4);
    expect(slices().filter((d) => existsSync(d))).toEqual([]);
  });

  it('only an empty slice goes: a cgroup someone else made in it meanwhile stays, and the slice with it', async () => {
    const t = makeTree('ho-race-');
    cleanups.push(t.cleanup);
    const made = makeSlices();
    const inner = made.filter((d) => d.endsWith('/ho-race.slice'));
    const others = inner.map((d) => join(d, 'ho-other'));
    cleanups.push(() => {
      for (const d of others) if (existsSync(d)) rmdirSync(d);
    });
    const run = start(t.dir, 'ho-race2', t.root, 'while [ ! -e /go ]; do sleep 0.05; done');
    const deadline = Date.now() + 20000;
    while (!scopes('ho-race2').every((d) => existsSync(d)) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
    expect(scopes('ho-race2').filter((d) => !existsSync(d))).toEqual([]);
    for (const d of others) mkdirSync(d);
    writeFileSync(join(t.root, 'go'), '');
    const r = await run;
    expect(r.stderr).toContain('slices removed');
    expect(r.exitCode).toBe(0);
    expect(scopes('ho-race2').filter((d) => existsSync(d))).toEqual([]);
    expect([...others, ...made].filter((d) => !existsSync(d))).toEqual([]);
  });
});

describe('locks held by the helper', () => {
  /** an extension that has the helper hold PATH (what the storage extension does with the image locks) */
  const locking = (path: string, exclusive = true) => ({
    name: 'test-lock',
    needed: () => false,
    plan: (_run: unknown, plan: { locks?: Array<{ path: string; exclusive: boolean; busy: string }> }) => {
      (plan.locks ??= []).push({ path, exclusive, busy: `Directory tree is currently busy (${path}).` });
    },
  });

  it('a second holder is refused with the plan\'s message while the first runs; the file goes with the last', async () => {
    const t = makeTree();
    cleanups.push(t.cleanup);
    const lock = join(t.dir, '.#bbox.lck');
    const first = prepareContainer({ directory: t.root, machineName: 'ho-lock1', consoleMode: 'pipe', parameters: ['/bin/sh', '-c', 'sleep 1'] }, nodePrepareEnv(nodeTree));
    const second = prepareContainer({ directory: t.root, machineName: 'ho-lock2', consoleMode: 'pipe', parameters: ['/bin/true'] }, nodePrepareEnv(nodeTree));
    const log1: string[] = [];
    const log2: string[] = [];
    const running = runContainer(first, { log: (l) => log1.push(l) }, undefined, undefined, [locking(lock)]);
    await new Promise((r) => setTimeout(r, 400));
    expect(existsSync(lock)).toBe(true);
    expect(await runContainer(second, { log: (l) => log2.push(l) }, undefined, undefined, [locking(lock)])).toBe(1);
    expect(log2.join('\n')).toContain(`Directory tree is currently busy (${lock}).`);
    expect(await running).toBe(0);
    expect(existsSync(lock)).toBe(false);
  });
});

describe('-x handed over (ov-)', () => {
  interface Seen {
    plan?: Plan;
    files: string[];
    mounts: string[];
  }
  interface Plan {
    root: string;
    removeMounts: string[];
    removeTrees: string[];
    removeSubvolumes: string[];
    inheritedLocks: Array<{ path: string; exclusive: boolean }>;
  }
  /** a process whose execve() records the helper's plan and what is on disk then, and fails */
  const failingExec = (t: { root: string }, seen: Seen) => {
    let sent: Uint8Array | undefined;
    return {
      planFd: (data: Uint8Array) => {
        sent = data;
        return openSync('/dev/null', 'r');
      },
      execve: (() => {
        seen.plan = decoded(sent!) as Plan;
        const dir = join(t.root, '..');
        seen.files = readdirSync(dir).sort();
        seen.mounts = mountsUnder(dir);
        throw new Error('E2BIG');
      }) as never,
      pid: process.pid,
      execPath: '/usr/bin/node',
      execArgv: [],
      argv: ['/usr/bin/node', '/x/nspawn'],
      env: {},
    };
  };

  it("an overlay: its lock goes with the exec, the helper is told its mounts and directory; a failed exec removes it", () => {
    const t = makeTree('ov-plan-');
    cleanups.push(t.cleanup);
    const p = prepareContainer({ directory: t.root, machineName: 'ov-plan', ephemeral: true, consoleMode: 'pipe', parameters: ['/bin/true'] }, nodePrepareEnv(nodeTree));
    const seen: Seen = { files: [], mounts: [] };
    expect(() => handoffContainer(p, { proc: failingExec(t, seen), hooks: { log: () => {} }, extensions: [storageExtension({ env: {} })] })).toThrow(ContainerError);
    const snap = seen.files.find((f) => f.startsWith('.#machine.') && !f.endsWith('.lck'))!;
    expect(snap).toMatch(/^\.#machine\.ov-plan-\w+[0-9a-f]{16}$/);
    const snapshot = join(t.root, '..', snap);
    expect(seen.mounts).toEqual([join(snapshot, 'root')]);
    expect(seen.plan!.removeMounts).toEqual([join(snapshot, 'root')]);
    expect(seen.plan!.removeTrees).toEqual([snapshot]);
    expect(seen.plan!.removeSubvolumes).toEqual([]);
    expect(seen.plan!.inheritedLocks).toMatchObject([{ path: join(t.root, '..', `.#${snap}.lck`), exclusive: true }]);
    expect(seen.plan!.root).toBe(join(snapshot, 'root'));
    // not handed over after all: Node's teardown removed the overlay, its directory and its lock
    expect(readdirSync(join(t.root, '..'))).toEqual([snap.slice('.#machine.'.length, -16)]);
    expect(mountsUnder(t.dir)).toEqual([]);
  });

  it('a copy: made while SIGINT/SIGTERM are held back (the exec waits for it), then handed over the same way', async () => {
    const t = makeTree('ov-copy-');
    cleanups.push(t.cleanup);
    const p = prepareContainer({ directory: t.root, machineName: 'ov-copy', ephemeral: true, consoleMode: 'pipe', parameters: ['/bin/true'] }, nodePrepareEnv(nodeTree));
    const seen: Seen = { files: [], mounts: [] };
    const r = handoffContainer(p, { proc: failingExec(t, seen), hooks: { log: () => {} }, extensions: [storageExtension({ env: { NSPAWN_EPHEMERAL: 'copy' } })] });
    expect(r).toBeInstanceOf(Promise);
    await expect(r).rejects.toThrow(ContainerError);
    const snap = seen.files.find((f) => f.startsWith('.#machine.') && !f.endsWith('.lck'))!;
    const snapshot = join(t.root, '..', snap);
    expect(seen.plan!.removeMounts).toEqual([]);
    expect(seen.plan!.removeTrees).toEqual([snapshot]); // ext4: a directory, not a subvolume
    expect(seen.plan!.root).toBe(snapshot);
    expect(readdirSync(join(t.root, '..'))).toEqual([snap.slice('.#machine.'.length, -16)]);
  });
});
