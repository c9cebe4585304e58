/**
 * What a plain start loads: no node:tty, net, child_process or streams (they cost milliseconds at start-up), no
 * library of a feature it does not use (@nspawn/net, koffi) and no bundle but nspawn.cjs (the systemd extension,
 * @nspawn/machined, --property='s settings, -i's glue and @nspawn/image are parts of their own: scripts/bundle.mjs).
 * Checked at the moment nspawn hands over to the helper.
 */
import { execaSync } from 'execa';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { busyboxTreeForFile } from './helpers/busybox-tree.js';

const loader = fileURLToPath(new URL('../bin/load.cjs', import.meta.url));
const box = busyboxTreeForFile('nspawn-test-startup-');

/**
 * Starts nspawn with ARGS through bin/nspawn's loader, as a user does, up to its exec of the helper: the runtime's
 * addon loads for real, but its execve() reports what was loaded and fails, so that nspawn gives up its scope (and
 * whatever it set up) and exits.
 */
function probeStart(args: string[], atExit = false) {
  const probe = join(box.dir, 'probe.cjs');
  writeFileSync(
    probe,
    `const addons = [];
const dlopen = process.dlopen;
const report = () => { require('fs').writeSync(1, JSON.stringify({ builtins: process.moduleLoadList, files: Object.keys(require.cache), addons, bundles: require(${JSON.stringify(loader)}).loadedBundles() })); throw new Error('probe'); };
process.dlopen = function (m, file) { addons.push(file); dlopen.call(this, m, file); if (m.exports.execve) m.exports.execve = report; };
process.execve = report;
${atExit ? "process.on('exit', () => { try { report(); } catch {} });" : ''}
process.argv = [process.argv[0], 'nspawn', ...${JSON.stringify(args)}];
require(${JSON.stringify(loader)}).load('nspawn');
`,
  );
  // (no code cache: the probe's exit would write one)
  const r = execaSync(process.execPath, [probe], { env: { NSPAWN_CODE_CACHE: '0' }, reject: false, stripFinalNewline: false });
  if (!atExit) expect(r.stderr).toContain('probe');
  const out = JSON.parse(r.stdout) as { builtins: string[]; files: string[]; addons: string[]; bundles: string[] };
  return { ...out, costly: out.builtins.filter((m) => /^NativeModule (tty|net|child_process|stream|dgram|crypto|zlib|os|internal\/worker)$/.test(m)) };
}
const sysAddon = fileURLToPath(new URL(`../dist/nspawn-sys-linux-${process.arch}.node`, import.meta.url));

describe('start-up', () => {
  it('a plain start loads neither tty, net, child_process, the streams nor a feature library before the hand-over', () => {
    const p = probeStart(['-q', '-D', box.tree, '-M', 'st-probe', '/bin/true']);
    expect(p.costly).toEqual([]);
    // the exec goes through the runtime's addon beside the bundle (not process.execve(): Node's worker machinery)
    expect(p.addons).toEqual([sysAddon]);
    expect(p.files.filter((f) => /nspawn-net|koffi|netlink/.test(f))).toEqual([]);
    expect(p.bundles).toEqual(['nspawn']);
  });

  it('--property= on a host without systemd loads its part (and @nspawn/machined\'s parser), not through require()', () => {
    // (a property it refuses: the start ends at the check, before anything is made)
    const p = probeStart(['-q', '-D', box.tree, '-M', 'st-probe-p', '--property=Bogus=50', '/bin/true'], true);
    expect(p.costly).toEqual(['NativeModule os']); // (MemoryMax=N% of the RAM)
    expect(p.bundles).toEqual(['nspawn', 'nspawn-scope', 'nspawn-machined']);
    // run by bin/load.cjs (each with a code cache of its own), not by Node's require()
    expect(p.files.filter((f) => /nspawn-(scope|machined)/.test(f))).toEqual([]);
  });

  it('-i loads its part (its glue and what it uses of @nspawn/image: no zlib, crypto, child_process or koffi), and leaves no loop device after a failure', () => {
    const image = box.rawImage();
    const p = probeStart(['-q', '-i', image, '-M', 'st-probe-i', '/bin/true']);
    expect(p.costly).toEqual([]);
    // the loop devices, the image lock and the view through the runtime's addon (@nspawn/assembly's src/image-sys.ts)
    expect(p.files.filter((f) => /koffi/.test(f))).toEqual([]);
    expect(p.bundles).toEqual(['nspawn', 'nspawn-image-run']);
    expect(p.files.filter((f) => /nspawn-image/.test(f))).toEqual([]);
    expect(execaSync('losetup', ['-j', image]).stdout).toBe('');
  });

  it('-U picks and locks its range without koffi (the runtime\'s addon takes the OFD lock), and leaves no lock after a failure', () => {
    const p = probeStart(['-q', '-U', '-D', box.tree, '-M', 'st-probe-u', '/bin/true']);
    expect(p.costly).toEqual([]);
    expect(p.addons).toEqual([sysAddon]);
    expect(p.files.filter((f) => /nspawn-net|koffi|netlink/.test(f))).toEqual([]);
    expect(p.bundles).toEqual(['nspawn']);
    expect(readdirSync('/run/systemd/nspawn-uid').filter((n) => /^\d+$/.test(n))).toEqual([]);
  });
});
