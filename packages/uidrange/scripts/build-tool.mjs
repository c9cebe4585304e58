#!/usr/bin/env node
// Builds native/build/uidrange-tool from native/uidrange-tool.c with the machine's C compiler, offline.
// Static when the C library allows it, dynamic otherwise. Skips when up to date.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(pkg, 'native', 'uidrange-tool.c');
const out = join(pkg, 'native', 'build', 'uidrange-tool');
if (!process.argv.includes('--force') && existsSync(out) && statSync(out).mtimeMs >= statSync(src).mtimeMs) process.exit(0);
mkdirSync(dirname(out), { recursive: true });
const cc = process.env.CC || 'cc';
const common = ['-O2', '-Wall', '-Wextra', '-o', `${out}.tmp`, src];
try {
  execFileSync(cc, ['-static', ...common], { stdio: ['ignore', 'ignore', 'pipe'] });
} catch {
  try {
    execFileSync(cc, common, { stdio: ['ignore', 'inherit', 'inherit'] });
  } catch {
    console.error(`@nspawn/uidrange: building the tool with '${cc}' failed; install a C compiler (Debian: gcc libc6-dev)`);
    process.exit(1);
  }
}
renameSync(`${out}.tmp`, out);
