/**
 * runPlan()'s side of the helper protocol, with a stand-in helper (a shell script that writes events on fd 3):
 * when the container counts as ready, with and without --notify-ready, and what reaches the hooks. No root needed.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runPlan } from './run.js';
import { basePlan } from './test/fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'nspawn-run-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A helper that reads its plan ("LENGTH\n" and the body), reports LINES on its control socket, runs AFTER, exits. */
function fakeHelper(lines: string[], after = ''): string {
  const path = join(dir, `helper-${Math.random().toString(36).slice(2)}`);
  writeFileSync(path, `#!/bin/sh\nread -r len <&3\nhead -c "$len" <&3 >/dev/null\nprintf '%s\\n' ${lines.map((l) => `'${l}'`).join(' ')} >&3\n${after}`);
  chmodSync(path, 0o755);
  return path;
}

const plan = basePlan({ root: '/nonexistent', argv: ['/sbin/init'] });

async function run(lines: string[], notifyReady: boolean) {
  const seen: string[] = [];
  const end = await runPlan(plan, {
    killSignal: 0,
    helper: fakeHelper(lines),
    stdio: ['ignore', 'ignore', 'ignore'],
    notifyReady,
    hooks: {
      log: (l) => seen.push(`log ${l}`),
      onStart: (pid) => seen.push(`start ${pid}`),
      onReady: () => seen.push('ready'),
      onNotify: (m) => seen.push(`notify ${m}`),
    },
  });
  return { end, seen };
}

const BOOT = ['pid 4242', 'ready', 'notify STATUS=Starting up', 'notify READY=1', 'notify STATUS=Ready.', 'notify READY=1', 'signal 2'];

describe('runPlan: readiness', () => {
  it('without --notify-ready the container is ready when its payload has started', async () => {
    const { end, seen } = await run(BOOT, false);
    expect(end).toEqual({ kind: 'signaled', signal: 2 });
    expect(seen).toEqual(['start 4242', 'ready', 'notify STATUS=Starting up', 'notify READY=1', 'notify STATUS=Ready.', 'notify READY=1']);
  });
  it("with --notify-ready it is ready when the container's init says READY=1, once", async () => {
    const { seen } = await run(BOOT, true);
    expect(seen).toEqual(['start 4242', 'notify STATUS=Starting up', 'notify READY=1', 'ready', 'notify STATUS=Ready.', 'notify READY=1']);
  });
  it('with --notify-ready and an init that never says it, never ready', async () => {
    const { end, seen } = await run(['pid 7', 'ready', 'exit 0'], true);
    expect(end).toEqual({ kind: 'exited', code: 0 });
    expect(seen).toEqual(['start 7']);
  });
});

describe('runPlan: --console=passive\'s rest', () => {
  /** The helper reports LINES then "held" and notes Node's answer; onHeld returns DRAIN. */
  async function held(lines: string[], drain?: boolean) {
    const answer = join(dir, `answer-${Math.random().toString(36).slice(2)}`);
    const seen: string[] = [];
    const end = await runPlan(plan, {
      killSignal: 0,
      helper: fakeHelper([...lines, 'held'], `read -r a <&3\necho "$a" > ${answer}\n`),
      stdio: ['ignore', 'ignore', 'ignore'],
      hooks: { log: (l) => seen.push(`log ${l}`) },
      ...(drain === undefined
        ? {}
        : {
            onHeld: (e) => {
              seen.push(`held ${JSON.stringify(e)}`);
              return drain;
            },
          }),
    });
    // (the line read has the rest of the binary plan the stand-in did not read in front of it)
    return { end, seen, answer: /(drain|drop)\n$/.exec(readFileSync(answer, 'utf8'))?.[1] };
  }
  it('asks onHeld with the end once the helper holds it, and answers drain or drop', async () => {
    expect(await held(['pid 7', 'ready', 'exit 3'], true)).toEqual({
      end: { kind: 'exited', code: 3 },
      seen: ['held {"kind":"exited","code":3}'],
      answer: 'drain',
    });
    expect(await held(['pid 7', 'ready', 'signal 1'], false)).toEqual({
      end: { kind: 'signaled', signal: 1 },
      seen: ['held {"kind":"signaled","signal":1}'],
      answer: 'drop',
    });
  });
  it('an error from the helper is the end onHeld gets; without onHeld the rest is drained', async () => {
    const { seen } = await held(['pid 7', 'error execv(/x) failed', 'exit 1'], true);
    expect(seen).toEqual(['held {"kind":"failed","message":"execv(/x) failed"}']);
    expect((await held(['pid 7', 'exit 0'])).answer).toBe('drain');
  });
});
