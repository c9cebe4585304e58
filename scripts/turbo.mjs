#!/usr/bin/env node
// turbo with the machine's toolchain in its cache key: every root script (pnpm build, test, typecheck, lint,
// bench), scripts/test.sh and the packaging tests' build run turbo through this, never `turbo` alone.
//   node scripts/turbo.mjs run build [turbo arguments...]
// Sets $NSPAWN_TOOLCHAIN (scripts/toolchain.mjs) for turbo, which hashes it into @nspawn/runtime#build (turbo.json):
// a build made before a cross compiler was installed is not reused after. The exit status is turbo's.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { toolchainFingerprint } from './toolchain.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { hash } = await toolchainFingerprint();
const r = await execa('turbo', process.argv.slice(2), {
  cwd: root,
  preferLocal: true,
  localDir: root,
  stdio: 'inherit',
  env: { NSPAWN_TOOLCHAIN: hash },
  reject: false,
});
process.exitCode = r.exitCode ?? 1;
if (r.exitCode === undefined) console.error(`turbo.mjs: ${r.shortMessage}`);
