// The C compilers the native programs are built with, and how: shared by the runtime's helper, its sys addon and
// nspawn-oci's front end (scripts/build-helper.mjs) and by the programs of other packages built on the runtime's
// C (apps/cli's nspawnctl front end: `import { ... } from '@nspawn/runtime/scripts/cc.mjs'`).
//
// Static when the C library allows it (faster exec, no loader; and a prebuilt program must run on any
// distribution), dynamic otherwise.
import { execFileSync } from 'node:child_process';
import { mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';

/** Cross compilers per architecture: [command, leading arguments], tried in order. */
export const CROSS = {
  x64: [['x86_64-linux-gnu-gcc', []], ['clang', ['--target=x86_64-linux-gnu']]],
  arm64: [['aarch64-linux-gnu-gcc', []], ['clang', ['--target=aarch64-linux-gnu']]],
};

/** The compilers per architecture, this machine's own ($CC or cc) first for its own architecture. */
export const COMPILERS = Object.fromEntries(
  Object.entries(CROSS).map(([a, list]) => [a, a === process.arch ? [[process.env.CC || 'cc', []], ...list] : list]),
);

/** The last compiler's complaint (its stderr), for the message of a build that failed. */
export let lastCompilerError = '';

/**
 * Compiles UNITS (C files; ARGS: the compiler's leading arguments, -I... say) into the program FILE with CC; static
 * first, unless STATICONLY. Returns false when the compiler fails (lastCompilerError says why).
 */
export function compile(cc, args, file, { staticOnly = false, units }) {
  mkdirSync(dirname(file), { recursive: true });
  const common = [...args, '-O2', '-Wall', '-Wextra', '-Wno-unused-parameter', '-o', `${file}.tmp`, ...units];
  const tries = staticOnly ? [['-static', ...common]] : [['-static', ...common], common];
  for (const t of tries) {
    try {
      execFileSync(cc, t, { stdio: ['ignore', 'ignore', 'pipe'] });
      renameSync(`${file}.tmp`, file);
      return true;
    } catch (e) {
      lastCompilerError = String(e.stderr ?? e.message ?? '').trim(); /* next */
    }
  }
  rmSync(`${file}.tmp`, { force: true });
  return false;
}
