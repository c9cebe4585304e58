#!/usr/bin/env node
// Bundles each command into one CommonJS file (the fastest start Node offers: one file, no ESM loader
// machinery) and puts the runtime's native helper beside it, where @nspawn/runtime looks for it.
import { build } from 'esbuild';
import { copyFileSync, cpSync, mkdirSync, chmodSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = join(dirname(fileURLToPath(import.meta.url)), '..');
const netSeparate = {
  name: 'net-separate',
  setup(b) {
    b.onResolve({ filter: /^@nspawn\/net$/ }, () => ({ path: './nspawn-net.cjs', external: true }));
  },
};
// @nspawn/net's `netlink` loads its native binding from its package directory: bundled, from dist/netlink/
const netlinkPrebuilds = {
  name: 'netlink-prebuilds',
  setup(b) {
    b.onLoad({ filter: /netlink[\\/]dist[\\/]raw\.js$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      const from = "require('node-gyp-build')(__dirname + '/..')";
      if (!text.includes(from)) throw new Error(`netlink's raw.js changed: cannot redirect its binding (${args.path})`);
      cpSync(join(dirname(args.path), '..', 'prebuilds'), join(here, 'dist/netlink/prebuilds'), { recursive: true });
      return { contents: text.replace(from, "require('node-gyp-build')(require('node:path').join(__dirname, 'netlink'))"), loader: 'js' };
    });
  },
};
mkdirSync(join(here, 'dist'), { recursive: true });
const require = createRequire(join(here, 'package.json'));
const runtimeDir = dirname(require.resolve('@nspawn/runtime/package.json'));

// The seccomp programs of the usual starts, computed now by the runtime being bundled (see nspawnSeccompBytes()):
// the default capabilities with and without a private network and a user namespace, with and without
// --suppress-sync. Other option sets are computed at start-up as before.
const runtime = await import(pathToFileURL(join(runtimeDir, 'dist/index.js')).href);
const precomputed = {};
for (const privateNetwork of [false, true])
  for (const privateUsers of [undefined, { mode: 'fixed', shift: 0x10000, range: 0x10000 }, { mode: 'pick' }])
    for (const suppressSync of [false, true]) {
      const s = { ...(privateNetwork ? { privateNetwork } : {}), ...(privateUsers ? { privateUsers } : {}) };
      const opts = { retainedCapabilities: runtime.containerCapabilities(s, s).retain, allow: [], deny: [], suppressSync };
      const f = runtime.nspawnSeccompFilter(opts);
      precomputed[runtime.seccompFilterKey(opts)] = { hex: Buffer.from(f.bytes).toString('hex'), warnings: f.warnings };
    }
writeFileSync(join(here, 'dist/precomputed-seccomp.json'), `${JSON.stringify(precomputed, null, 1)}\n`);
await build({
  entryPoints: { nspawn: join(here, 'src/nspawn.ts'), nspawnctl: join(here, 'src/nspawnctl.ts') },
  outdir: join(here, 'dist'),
  outExtension: { '.js': '.cjs' },
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node24',
  sourcemap: 'linked',
  logLevel: 'warning',
  // the libraries are ESM and use import.meta.url to find files beside them
  // (import.meta.url only when asked for: making the URL costs at start-up)
  define: { 'import.meta.url': '__nspawn_meta.url', 'import.meta.dirname': '__dirname', __NSPAWN_PRECOMPUTED_SECCOMP__: JSON.stringify(precomputed) },
  banner: { js: 'var __nspawn_meta = { get url() { return require("node:url").pathToFileURL(__filename).href; } };' },
  // @nspawn/net (and netlink's large generated code) is a bundle of its own, loaded only by a container with a
  // network: parsing it on every start would cost ~10 ms
  plugins: [netlinkPrebuilds, netSeparate],
});
await build({
  entryPoints: { 'nspawn-net': join(runtimeDir, 'node_modules/@nspawn/net/dist/index.js') },
  outdir: join(here, 'dist'),
  outExtension: { '.js': '.cjs' },
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node24',
  sourcemap: 'linked',
  logLevel: 'warning',
  define: { 'import.meta.url': '__nspawn_import_meta_url' },
  banner: { js: 'var __nspawn_import_meta_url = require("node:url").pathToFileURL(__filename).href;' },
  plugins: [netlinkPrebuilds],
});
// copied beside and renamed over: a helper that running containers execute cannot be written to (ETXTBSY)
copyFileSync(join(runtimeDir, 'native/build/nspawn-helper'), join(here, 'dist/nspawn-helper.tmp'));
chmodSync(join(here, 'dist/nspawn-helper.tmp'), 0o755);
renameSync(join(here, 'dist/nspawn-helper.tmp'), join(here, 'dist/nspawn-helper'));
