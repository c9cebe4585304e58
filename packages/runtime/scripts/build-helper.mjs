#!/usr/bin/env node
// The native helper (native/*.c: nspawn-helper.c's main and one file per concern, each compiled on its own and linked
// together) as native/build/nspawn-helper, offline.
//
//   node scripts/build-helper.mjs             install: a prebuilt helper for this machine's architecture
//                                             (native/prebuilt/nspawn-helper-linux-ARCH, shipped in the
//                                             tarball) when one exists and runs here; else build it with the
//                                             machine's C compiler ($CC or cc). No compiler needed when a
//                                             prebuilt one fits.
//   node scripts/build-helper.mjs --build     the workspace build: compile native/build/nspawn-helper, then
//                                             the prebuilt helpers for x64 and arm64 (cross compilers:
//                                             aarch64-linux-gnu-gcc, or clang --target=aarch64-linux-gnu
//                                             with Debian's libc6-dev-arm64-cross); an architecture whose
//                                             compiler is missing is skipped with a note.
//   --force                                   rebuild even when up to date
//
// The compilers and how they are called: scripts/cc.mjs (static when the C library allows it, dynamic otherwise).
// NSPAWN_HELPER_ARCH overrides the architecture (tests, odd hosts).
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { COMPILERS, compile as compileC, lastCompilerError } from './cc.mjs';

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..');
const nativeDir = join(pkg, 'native');
const src = join(nativeDir, 'nspawn-helper.c');
/** The sys addon's units (the rest of native/*.c is the helper's). */
const ADDON_UNITS = ['sys-addon.c', 'ofd-lock.c'];
/** nspawn-oci's native front end (nspawn-oci-front): native/oci-*.c, a program of its own (see oci-front.h). */
const isFrontUnit = (f) => f.startsWith('oci-') && f.endsWith('.c');
const frontUnits = () =>
  readdirSync(nativeDir)
    .filter(isFrontUnit)
    .sort()
    .map((f) => join(nativeDir, f));
/** The helper's units: every native/*.c but the addon's own (ofd-lock.c is shared) and the front end's. */
const helperUnits = () =>
  readdirSync(nativeDir)
    .filter((f) => f.endsWith('.c') && f !== 'sys-addon.c' && !isFrontUnit(f))
    .sort()
    .map((f) => join(nativeDir, f));
const out = join(nativeDir, 'build', 'nspawn-helper');
const prebuiltDir = join(nativeDir, 'prebuilt');
const force = process.argv.includes('--force');
const buildMode = process.argv.includes('--build');
const arch = process.env.NSPAWN_HELPER_ARCH || process.arch;
const say = (m) => console.error(`@nspawn/runtime: ${m}`);

export const prebuiltPath = (a) => join(prebuiltDir, `nspawn-helper-linux-${a}`);
const frontOut = join(nativeDir, 'build', 'nspawn-oci-front');
export const prebuiltFrontPath = (a) => join(prebuiltDir, `nspawn-oci-front-linux-${a}`);

// The sys addon (native/sys-addon.c, nspawn-sys.node): optional, the runtime falls back to process.execve() and koffi
// without it
const addonUnits = ADDON_UNITS.map((f) => join(nativeDir, f));
const addonOut = join(nativeDir, 'build', 'nspawn-sys.node');
export const prebuiltAddonPath = (a) => join(prebuiltDir, `nspawn-sys-linux-${a}.node`);

function newestSource() {
  return Math.max(
    ...readdirSync(nativeDir)
      .filter((f) => f.endsWith('.c') || f.endsWith('.h'))
      .map((f) => statSync(join(nativeDir, f)).mtimeMs),
  );
}
const upToDate = (file) => !force && existsSync(file) && statSync(file).mtimeMs >= newestSource();

/** A hash of the C sources: the prebuilt helpers record the one they were built from (mtimes do not survive npm). */
function sourceHash() {
  const h = createHash('sha256');
  for (const f of readdirSync(nativeDir).filter((f) => f.endsWith('.c') || f.endsWith('.h')).sort()) h.update(`${f}\0`).update(readFileSync(join(nativeDir, f)));
  return h.digest('hex');
}
const hashFile = join(prebuiltDir, 'sources.sha256');
const prebuiltFresh = () => existsSync(hashFile) && readFileSync(hashFile, 'utf8').trim() === sourceHash();

/** Compiles the helper (or with units: frontUnits(), the OCI front end) into `file` with `cc` (+ args); static first. */
const compile = (cc, args, file, { staticOnly = false, units = helperUnits() } = {}) => compileC(cc, args, file, { staticOnly, units });

/** Compiles the sys addon into `file` with `cc` (+ args), a shared object. Returns false when the compiler fails. */
function compileAddon(cc, args, file) {
  mkdirSync(dirname(file), { recursive: true });
  try {
    execFileSync(cc, [...args, '-O2', '-Wall', '-Wextra', '-shared', '-fPIC', '-o', `${file}.tmp`, ...addonUnits], { stdio: ['ignore', 'ignore', 'pipe'] });
    renameSync(`${file}.tmp`, file);
    return true;
  } catch {
    rmSync(`${file}.tmp`, { force: true });
    return false;
  }
}

/** Does this addon load into this Node and offer execve() and memfd()? */
export function addonLoadsHere(file) {
  try {
    const m = { exports: {} };
    process.dlopen(m, file);
    return typeof m.exports.execve === 'function' && typeof m.exports.memfd === 'function';
  } catch {
    return false;
  }
}

/** native/build/nspawn-sys.node for this machine: the prebuilt one when it loads here, else compiled; else none. */
function installAddon() {
  if (upToDate(addonOut) && addonLoadsHere(addonOut)) return;
  const pre = prebuiltAddonPath(arch);
  if (existsSync(pre) && prebuiltFresh() && addonLoadsHere(pre)) {
    mkdirSync(dirname(addonOut), { recursive: true });
    copyFileSync(pre, `${addonOut}.tmp`);
    renameSync(`${addonOut}.tmp`, addonOut);
    return;
  }
  if (!compileAddon(process.env.CC || 'cc', [], addonOut) || !addonLoadsHere(addonOut)) {
    rmSync(addonOut, { force: true });
    say('no sys addon for this machine (no C compiler?): nspawn hands over with process.execve() and locks -U ranges through koffi, a few ms slower');
  }
}

/** Does this binary execute here? (The helper without a plan on fd 3 says so and exits 2.) */
export function runsHere(file) {
  const r = spawnSync(file, [], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 5000 });
  return !r.error && r.status === 2 && /no plan on fd 3/.test(String(r.stderr));
}

if (!existsSync(src)) {
  say(`${src} is missing; cannot build the helper`);
  process.exit(1);
}

if (buildMode) {
  if (!upToDate(out)) {
    const cc = process.env.CC || 'cc';
    if (!compile(cc, [], out)) {
      say(`building the helper with '${cc}' failed; install a C compiler (Debian: gcc libc6-dev)`);
      if (lastCompilerError) console.error(lastCompilerError.split('\n').slice(0, 40).join('\n'));
      process.exit(1);
    }
  }
  if (!upToDate(addonOut) && !compileAddon(process.env.CC || 'cc', [], addonOut)) say('building the sys addon failed');
  if (!upToDate(frontOut) && !compile(process.env.CC || 'cc', [], frontOut, { units: frontUnits() })) {
    say(`building nspawn-oci's front end failed`);
    if (lastCompilerError) console.error(lastCompilerError.split('\n').slice(0, 40).join('\n'));
    process.exit(1);
  }
  const fresh = prebuiltFresh();
  for (const [a, compilers] of Object.entries(COMPILERS)) {
    const file = prebuiltPath(a);
    if (!(fresh && upToDate(file))) {
      const built = compilers.some(([cc, args]) => compile(cc, args, file, { staticOnly: true }));
      if (!built) {
        rmSync(file, { force: true });
        say(`no static ${a} compiler here (arm64 on Debian: clang libc6-dev-arm64-cross); ${a} not prebuilt`);
      }
    }
    const front = prebuiltFrontPath(a);
    if (!(fresh && upToDate(front)) && !compilers.some(([cc, args]) => compile(cc, args, front, { staticOnly: true, units: frontUnits() }))) {
      rmSync(front, { force: true });
      say(`no static ${a} compiler here; nspawn-oci's front end for ${a} not prebuilt (nspawn-oci runs all in Node there)`);
    }
    const addon = prebuiltAddonPath(a);
    if (fresh && upToDate(addon)) continue;
    if (!compilers.some(([cc, args]) => compileAddon(cc, args, addon))) {
      rmSync(addon, { force: true });
      say(`no ${a} compiler for the sys addon; ${a}'s not prebuilt`);
    }
  }
  mkdirSync(prebuiltDir, { recursive: true });
  writeFileSync(hashFile, `${sourceHash()}\n`);
  process.exit(0);
}

/** native/build/nspawn-oci-front: the prebuilt one when it runs here, else compiled; else none (nspawn-oci: all in Node). */
function installFront() {
  const runs = (f) => spawnSync(f, [], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 5000 }).status === 2;
  if (upToDate(frontOut) && runs(frontOut)) return;
  const pre = prebuiltFrontPath(arch);
  if (existsSync(pre) && prebuiltFresh()) {
    mkdirSync(dirname(frontOut), { recursive: true });
    copyFileSync(pre, `${frontOut}.tmp`);
    chmodSync(`${frontOut}.tmp`, 0o755);
    renameSync(`${frontOut}.tmp`, frontOut);
    if (runs(frontOut)) return;
  }
  if (!compile(process.env.CC || 'cc', [], frontOut, { units: frontUnits() })) {
    rmSync(frontOut, { force: true });
    say(`no nspawn-oci front end for this machine (no C compiler?): nspawn-oci runs every call in Node, slower`);
  }
}

// install
installAddon();
installFront();
if (upToDate(out) && runsHere(out)) process.exit(0);
const pre = prebuiltPath(arch);
// (a prebuilt helper built from other sources is stale: a checkout whose C changed since the last build)
if (existsSync(pre) && prebuiltFresh()) {
  mkdirSync(dirname(out), { recursive: true });
  copyFileSync(pre, `${out}.tmp`);
  chmodSync(`${out}.tmp`, 0o755);
  renameSync(`${out}.tmp`, out);
  if (runsHere(out)) process.exit(0);
  say(`the prebuilt helper for ${arch} does not run here; building it`);
} else if (!existsSync(pre)) {
  say(`no prebuilt helper for ${arch}; building it`);
}
const cc = process.env.CC || 'cc';
if (!compile(cc, [], out)) {
  rmSync(out, { force: true });
  say(`building the helper with '${cc}' failed; install a C compiler (Debian: gcc libc6-dev)`);
  process.exit(1);
}
