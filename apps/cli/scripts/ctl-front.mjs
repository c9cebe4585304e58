#!/usr/bin/env node
// nspawnctl's native front end (native/ctl-front.c, see there; bin/nspawnctl runs it) as dist/nspawnctl-front-linux-ARCH,
// static, for this machine and prebuilt for x64 and arm64 (the published package runs it without a compiler),
// built with @nspawn/runtime's compilers (scripts/cc.mjs) and its JSON (native/oci-json.c, which nspawn-oci's front
// end uses too). An architecture whose compiler is missing is skipped with a note: there, nspawnctl is all Node.
//
//   node scripts/ctl-front.mjs [--force]
import { existsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { COMPILERS, compile, lastCompilerError } from '@nspawn/runtime/scripts/cc.mjs';

const here = join(dirname(fileURLToPath(import.meta.url)), '..');
const runtimeNative = join(dirname(createRequire(import.meta.url).resolve('@nspawn/runtime/package.json')), 'native');
const units = [join(here, 'native/ctl-front.c'), join(runtimeNative, 'oci-json.c'), join(runtimeNative, 'oci-socket.c')];
const sources = [...units, join(runtimeNative, 'oci-json.h'), join(runtimeNative, 'oci-socket.h'), fileURLToPath(import.meta.url)];
const say = (m) => console.error(`@nspawn/cli: ${m}`);
const force = process.argv.includes('--force');

export const frontPath = (arch) => join(here, 'dist', `nspawnctl-front-linux-${arch}`);

const newest = Math.max(...sources.map((f) => statSync(f).mtimeMs));
for (const [arch, compilers] of Object.entries(COMPILERS)) {
  const file = frontPath(arch);
  if (!force && existsSync(file) && statSync(file).mtimeMs >= newest) continue;
  if (compilers.some(([cc, args]) => compile(cc, [...args, `-I${runtimeNative}`], file, { staticOnly: true, units }))) continue;
  if (arch === process.arch) {
    say(`building nspawnctl's front end failed; nspawnctl runs every call in Node`);
    if (lastCompilerError) console.error(lastCompilerError.split('\n').slice(0, 40).join('\n'));
  } else say(`no static ${arch} compiler here (arm64 on Debian: clang libc6-dev-arm64-cross); nspawnctl's front end for ${arch} not prebuilt`);
}
