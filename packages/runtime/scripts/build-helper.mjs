#!/usr/bin/env node
// Builds native/build/nspawn-helper from native/nspawn-helper.c with the machine's C compiler, offline.
// Static when the C library allows it (faster exec, no loader), dynamic otherwise. Skips when up to date.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(pkg, 'native', 'nspawn-helper.c');
const out = join(pkg, 'native', 'build', 'nspawn-helper');
const force = process.argv.includes('--force');

if (!existsSync(src)) {
  console.error(`@nspawn/runtime: ${src} is missing; cannot build the helper`);
  process.exit(1);
}
// up to date when newer than every C source and header it includes (native/*.c, native/*.h)
const sources = readdirSync(dirname(src))
  .filter((f) => f.endsWith('.c') || f.endsWith('.h'))
  .map((f) => statSync(join(dirname(src), f)).mtimeMs);
if (!force && existsSync(out) && statSync(out).mtimeMs >= Math.max(...sources)) process.exit(0);
mkdirSync(dirname(out), { recursive: true });
const cc = process.env.CC || 'cc';
const common = ['-O2', '-Wall', '-Wextra', '-Wno-unused-parameter', '-o', `${out}.tmp`, src];
try {
  execFileSync(cc, ['-static', ...common], { stdio: ['ignore', 'ignore', 'pipe'] });
} catch {
  try {
    execFileSync(cc, common, { stdio: ['ignore', 'inherit', 'inherit'] });
  } catch {
    console.error(`@nspawn/runtime: building the helper with '${cc}' failed; install a C compiler (Debian: gcc libc6-dev)`);
    process.exit(1);
  }
}
renameSync(`${out}.tmp`, out);
