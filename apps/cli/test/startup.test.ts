/**
 * What a plain start loads: no node:tty, net, child_process or streams (they cost milliseconds at start-up) and no
 * library of a feature it does not use (@nspawn/net, koffi). Checked at the moment nspawn hands over to the helper.
 */
import { execaSync } from 'execa';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
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

/**
 * Starts nspawn with ARGS through bin/nspawn's loader, as a user does, up to its exec of the helper: the runtime's
 * addon loads for real, but its execve() reports what was loaded and fails, so that nspawn gives up its scope (and
 * whatever it set up) and exits.
 */
function probeStart(args: string[]) {
  const probe = join(dir, 'probe.cjs');
  writeFileSync(
    probe,
    `const addons = [];
const dlopen = process.dlopen;
const report = () => { require('fs').writeSync(1, JSON.stringify({ builtins: process.moduleLoadList, files: Object.keys(require.cache), addons })); throw new Error('probe'); };
process.dlopen = function (m, file) { addons.push(file); dlopen.call(this, m, file); if (m.exports.execve) m.exports.execve = report; };
process.execve = report;
process.argv = [process.argv[0], 'nspawn', ...${JSON.stringify(args)}];
require(${JSON.stringify(loader)}).load('nspawn');
`,
  );
  // (no code cache: the probe's exit would write one)
  const r = execaSync(process.execPath, [probe], { env: { NSPAWN_CODE_CACHE: '0' }, reject: false, stripFinalNewline: false });
  expect(r.stderr).toContain('probe');
  const out = JSON.parse(r.stdout) as { builtins: string[]; files: string[]; addons: string[] };
  return { ...out, costly: out.builtins.filter((m) => /^NativeModule (tty|net|child_process|stream|dgram|crypto|internal\/worker)$/.test(m)) };
}
const sysAddon = fileURLToPath(new URL(`../dist/nspawn-sys-linux-${process.arch}.node`, import.meta.url));

describe('start-up', () => {
  it('a plain start loads neither tty, net, child_process, the streams nor a feature library before the hand-over', () => {
    const p = probeStart(['-q', '-D', tree, '-M', 'st-probe', '/bin/true']);
    expect(p.costly).toEqual([]);
    // the exec goes through the runtime's addon beside the bundle (not process.execve(): Node's worker machinery)
    expect(p.addons).toEqual([sysAddon]);
    expect(p.files.filter((f) => /nspawn-net|koffi|netlink/.test(f))).toEqual([]);
  });

  it('-U picks and locks its range without koffi (the runtime\'s addon takes the OFD lock), and leaves no lock after a failure', () => {
    const p = probeStart(['-q', '-U', '-D', tree, '-M', 'st-probe-u', '/bin/true']);
    expect(p.costly).toEqual([]);
    expect(p.addons).toEqual([sysAddon]);
    expect(p.files.filter((f) => /nspawn-net|koffi|netlink/.test(f))).toEqual([]);
    expect(readdirSync('/run/systemd/nspawn-uid').filter((n) => /^\d+$/.test(n))).toEqual([]);
  });
});
