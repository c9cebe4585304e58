/**
 * What a plain start loads: no node:tty, net, child_process or streams (they cost milliseconds at start-up) and no
 * library of a feature it does not use (@nspawn/net, koffi). Checked at the moment nspawn hands over to the helper.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxTree } from './helpers/busybox-tree.js';

const loader = fileURLToPath(new URL('../bin/load.cjs', import.meta.url));
let dir = '';
let tree = '';
beforeAll(() => {
  dir = mkdtempSync('/tmp/nspawn-test-startup-');
  tree = join(dir, 'box');
  makeBusyboxTree(tree);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('start-up', () => {
  it('a plain start loads neither tty, net, child_process, the streams nor a feature library before the hand-over', () => {
    const probe = join(dir, 'probe.cjs');
    // execve() that reports what was loaded and fails, so that nspawn gives up its scope and exits; the execve
    // addon's loading fails too (the hand-over then falls back to process.execve()), after saying where it was
    writeFileSync(
      probe,
      `const addons = [];
process.dlopen = (m, file) => { addons.push(file); throw new Error('no addon in the probe'); };
process.execve = () => { require('fs').writeSync(1, JSON.stringify({ builtins: process.moduleLoadList, files: Object.keys(require.cache), addons })); throw new Error('probe'); };
process.argv = [process.argv[0], 'nspawn', '-q', '-D', ${JSON.stringify(tree)}, '-M', 'st-probe', '/bin/true'];
require(${JSON.stringify(loader)}).load('nspawn');
`,
    );
    // through bin/nspawn's loader, as a user starts it (no code cache: the probe's exit would write one)
    const r = spawnSync(process.execPath, [probe], { encoding: 'utf8', env: { ...process.env, NSPAWN_CODE_CACHE: '0' } });
    expect(r.stderr).toContain('probe');
    const { builtins, files, addons } = JSON.parse(r.stdout) as { builtins: string[]; files: string[]; addons: string[] };
    const loaded = builtins.filter((m) => /^NativeModule (tty|net|child_process|stream|dgram|crypto|internal\/worker)$/.test(m));
    expect(loaded).toEqual([]);
    // the exec goes through the execve addon beside the bundle, when it loads
    expect(addons[0]).toBe(fileURLToPath(new URL(`../dist/nspawn-execve-linux-${process.arch}.node`, import.meta.url)));
    expect(files.filter((f) => /nspawn-net|koffi|netlink/.test(f))).toEqual([]);
  });
});
