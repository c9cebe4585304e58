#!/usr/bin/env node
// Bundles each command into one ESM file (fast start: one module to load) and puts the runtime's native
// helper beside it, where @nspawn/runtime looks for it when bundled.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, chmodSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = join(dirname(fileURLToPath(import.meta.url)), '..');
mkdirSync(join(here, 'dist'), { recursive: true });
await build({
  entryPoints: { nspawn: join(here, 'src/nspawn.ts') },
  outdir: join(here, 'dist'),
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node24',
  sourcemap: 'linked',
  logLevel: 'warning',
});
const require = createRequire(join(here, 'package.json'));
const runtimeDir = dirname(require.resolve('@nspawn/runtime/package.json'));
copyFileSync(join(runtimeDir, 'native/build/nspawn-helper'), join(here, 'dist/nspawn-helper'));
chmodSync(join(here, 'dist/nspawn-helper'), 0o755);
