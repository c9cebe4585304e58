#!/usr/bin/env node
// Bundles each command into one CommonJS file (the fastest start Node offers: one file, no ESM loader
// machinery) and puts the runtime's native helper beside it, where @nspawn/runtime looks for it.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, chmodSync, renameSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { buildWeb, webSeparate } from './web-build.mjs';
import { dbusEntry, dbusSeparate } from './dbus-build.mjs';

const here = join(dirname(fileURLToPath(import.meta.url)), '..');
mkdirSync(join(here, 'dist'), { recursive: true });
const require = createRequire(join(here, 'package.json'));
const runtimeDir = dirname(require.resolve('@nspawn/runtime/package.json'));

// the seccomp programs of the usual starts, computed now by the runtime being bundled (see nspawnSeccompBytes())
const runtime = await import(pathToFileURL(join(runtimeDir, 'dist/index.js')).href);
const precomputed = runtime.precomputeSeccompPrograms();
await build({
  entryPoints: { nspawnd: join(here, 'src/nspawnd.ts') },
  outdir: join(here, 'dist'),
  outExtension: { '.js': '.cjs' },
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node24',
  sourcemap: 'linked',
  logLevel: 'warning',
  // the web view (--web) is a bundle of its own, imported only then
  plugins: [webSeparate, dbusSeparate],
  // the libraries are ESM and use import.meta.url to find files beside them
  define: { 'import.meta.url': '__nspawn_import_meta_url', 'import.meta.dirname': '__dirname', __NSPAWN_PRECOMPUTED_SECCOMP__: JSON.stringify(precomputed) },
  // loaded from node_modules at run time: @nspawn/net (netlink's native binding finds itself there) and koffi
  external: ['@nspawn/net', 'koffi'],
  banner: { js: 'var __nspawn_import_meta_url = require("node:url").pathToFileURL(__filename).href;' },
});
// @nspawn/machined's D-Bus library (systemd hosts only): dist/nspawn-dbus.cjs
await build({ entryPoints: { 'nspawn-dbus': dbusEntry(require) }, outdir: join(here, 'dist'), outExtension: { '.js': '.cjs' }, bundle: true, platform: 'node', format: 'cjs', target: 'node24', sourcemap: 'linked', logLevel: 'warning' });
// the web view: dist/nspawnd-web.cjs, dist/nspawnd-import.cjs, dist/web/
await buildWeb(join(here, 'dist'), { target: 'node24', sourcemap: 'linked', logLevel: 'warning' }, ['koffi', '@nspawn/net']);
// copied beside and renamed over: a helper that running containers execute cannot be written to (ETXTBSY)
copyFileSync(join(runtimeDir, 'native/build/nspawn-helper'), join(here, 'dist/nspawn-helper.tmp'));
chmodSync(join(here, 'dist/nspawn-helper.tmp'), 0o755);
renameSync(join(here, 'dist/nspawn-helper.tmp'), join(here, 'dist/nspawn-helper'));
