/**
 * The helper's side of --bind-user= as root on the real kernel: with plan.bindMaps the user namespace's maps are
 * split around each bound container ID as make_uid_map_string() splits them, so that the container ID is the host
 * user's. (The users' records, homes and refusals side by side with systemd-nspawn 252:
 * apps/cli/test/compare-bind-user.test.ts.)
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type ContainerExtension, nodePrepareEnv, nodeTree, prepareContainer, runContainer } from '../src/index.js';
import { captureFiles, makeTree, requireRoot } from './helpers.js';

beforeAll(requireRoot);

const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

describe('bind-user maps', () => {
  it('0 SHIFT 60514, each bound ID to its host ID, then the rest of the range (UIDs and GIDs apart)', async () => {
    const t = makeTree('nspawn-test-bindmap-');
    cleanups.push(t.cleanup);
    const cap = captureFiles(t.dir);
    cleanups.push(cap.close);
    const shift = 0x6f0000;
    const prepared = prepareContainer(
      {
        consoleMode: 'pipe',
        directory: t.root,
        privateUsers: { mode: 'fixed', shift, range: 65536 },
        privateUsersOwnership: 'off',
        parameters: ['/bin/sh', '-c', 'cat /proc/self/uid_map; echo --; cat /proc/self/gid_map'],
      },
      nodePrepareEnv(nodeTree),
    );
    const maps: ContainerExtension = {
      name: 'maps',
      plan: (_run, plan) => {
        plan.bindMaps = [
          { uid: 60514, hostUid: 4711, gid: 60514, hostGid: 4721 },
          { uid: 60515, hostUid: 4712, gid: 60515, hostGid: 4722 },
        ];
      },
    };
    const log: string[] = [];
    const code = await runContainer(prepared, { log: (l) => log.push(l) }, undefined, cap.stdio, [maps]);
    const { out, err } = cap.read();
    expect(code, `${err}${log.join('\n')}`).toBe(0);
    const rows = (s: string) => s.trim().split('\n').map((l) => l.trim().split(/\s+/).map(Number));
    const [uid, gid] = out.split('--\n');
    expect(rows(uid!)).toEqual([
      [0, shift, 60514],
      [60514, 4711, 1],
      [60515, 4712, 1],
      [60516, shift + 60516, 65536 - 60516],
    ]);
    expect(rows(gid!)).toEqual([
      [0, shift, 60514],
      [60514, 4721, 1],
      [60515, 4722, 1],
      [60516, shift + 60516, 65536 - 60516],
    ]);
  });
});
