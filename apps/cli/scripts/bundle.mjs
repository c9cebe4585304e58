#!/usr/bin/env node
// Bundles each command into one CommonJS file (the fastest start Node offers: one file, no ESM loader
// machinery) and puts the runtime's native helpers beside them, where @nspawn/runtime looks for them: the
// one built on this machine, and the prebuilt static ones per architecture (the global package runs on
// x64 and arm64 without a compiler).
//
// The commands are found, not listed: every `bin` of package.json and every known command whose source
// exists: nspawn (src/nspawn.ts), nspawnctl (src/nspawnctl.ts), nspawnd (apps/daemon: src/nspawnd.ts,
// src/main.ts or src/cli.ts). dist/NAME.cjs is what bin/NAME loads.
import { build } from 'esbuild';
import { copyFileSync, cpSync, mkdirSync, chmodSync, existsSync, readdirSync, readFileSync, realpathSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { buildWeb, webSeparate } from '../../daemon/scripts/web-build.mjs';
import { dbusEntry, dbusSeparate, machinedSeparate } from '../../daemon/scripts/dbus-build.mjs';

const here = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(here, 'package.json'), 'utf8'));

/** Where each command's source may be, first existing wins. */
const SOURCES = {
  nspawnd: ['../daemon/src/nspawnd.ts', '../daemon/src/main.ts', '../daemon/src/cli.ts'],
};
const sourcesOf = (name) => SOURCES[name] ?? [`src/${name}.ts`];

/** name -> absolute source path, for each command whose source exists. */
export function commandEntries() {
  const names = new Set(['nspawn', 'nspawnctl', 'nspawnd', ...Object.keys(pkg.bin ?? {})]);
  const out = {};
  for (const n of names) {
    const src = sourcesOf(n).map((s) => join(here, s)).find((s) => existsSync(s));
    if (src) out[n] = src;
  }
  return out;
}
const netSeparate = {
  name: 'net-separate',
  setup(b) {
    b.onResolve({ filter: /^@nspawn\/net$/ }, () => ({ path: './nspawn-net.cjs', external: true }));
  },
};
// @nspawn/image (disk images, -i) is a bundle of its own, loaded by the first -i start: parsing it (and its
// node:child_process) on every start would cost start-up time
const imageSeparate = {
  name: 'image-separate',
  setup(b) {
    b.onResolve({ filter: /^@nspawn\/image$/ }, () => ({ path: './nspawn-image.cjs', external: true }));
  },
};
// execa (child processes of nspawnctl's shell, login, bind and copy verbs) is a bundle of its own, required when
// such a verb first runs a process: in the command's bundle it would be read at every start of `nspawnctl list`
const execaSeparate = {
  name: 'execa-separate',
  setup(b) {
    b.onResolve({ filter: /^execa$/ }, () => ({ path: './nspawn-execa.cjs', external: true }));
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
/**
 * The parts of nspawn's start that only some starts need, each a bundle of its own (dist/PART.cjs) loaded when it is
 * first needed, with a code cache of its own (bin/load.cjs): the systemd extension (systemd hosts), --slice=/--property=
 * without systemd, -i's glue with the part of @nspawn/image it uses. Keyed by the module (of @nspawn/assembly) that
 * starts the part.
 */
export function startParts(require) {
  const assembly = realpathSync(join(dirname(require.resolve('@nspawn/assembly/package.json')), 'dist'));
  return { 'nspawn-systemd': join(assembly, 'systemd.js'), 'nspawn-scope': join(assembly, 'scope-settings.js'), 'nspawn-image-run': join(assembly, 'image.js') };
}
/** dist/PART.cjs for each module of PARTS imported by the bundle (an import of it no one uses is dropped) */
const partsSeparate = (parts) => ({
  name: 'parts-separate',
  setup(b) {
    const byFile = new Map(Object.entries(parts).map(([name, file]) => [file, name]));
    b.onResolve({ filter: /^\.\.?\// }, (args) => {
      const name = byFile.get(resolve(args.resolveDir, args.path));
      return name && args.kind !== 'entry-point' ? { path: `./${name}.cjs`, external: true, sideEffects: false } : undefined;
    });
  },
});
/**
 * The libraries a part bundles with it (only what it uses of them: -i's glue needs 60 of @nspawn/image's 130 KB, and
 * its bundle would copy @nspawn/btrfs and @nspawn/settings, which nspawn's has)
 */
const PART_INLINE = { 'nspawn-image-run': /[\\/]packages[\\/](image[\\/]dist[\\/]|assembly[\\/]dist[\\/]image-sys\.js$)/ };
/**
 * For the bundle of a part: the modules of the command's bundle (@nspawn/runtime, @nspawn/settings, the rest of
 * @nspawn/assembly, @nspawn/btrfs, @nspawn/syscall, @nspawn/uidrange) are not copied into it but taken from the
 * command's, `nspawn-shared:PATH` (one ContainerError class, one record of the runs machined knows, one image lock
 * registry...); the other parts and the libraries with bundles of their own stay apart, those of PART_INLINE go in.
 * SHARED collects the modules taken.
 */
const sharedWithCommand = (parts, entry, shared, inline) => ({
  name: 'shared-with-command',
  setup(b) {
    const partFiles = new Map(Object.entries(parts).map(([name, file]) => [file, name]));
    b.onResolve({ filter: /^(\.\.?\/|@nspawn\/)/ }, async (args) => {
      if (args.kind === 'entry-point' || args.pluginData === 'shared-with-command') return undefined;
      const r = await b.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, importer: args.importer, pluginData: 'shared-with-command' });
      if (r.errors.length > 0 || r.external) return r;
      const file = realpathSync(r.path);
      if (file === entry || inline?.test(file)) return undefined;
      const part = partFiles.get(file);
      if (part) return { path: `./${part}.cjs`, external: true, sideEffects: false };
      if (!/[\\/]packages[\\/](runtime|settings|assembly|btrfs|syscall|uidrange)[\\/]dist[\\/]/.test(file))
        throw new Error(`${relative(here, args.importer)}: ${args.path} is neither in nspawn's bundle nor a bundle of its own`);
      const id = relative(join(here, '../..'), file);
      shared.add(id);
      return { path: `nspawn-shared:${id}`, external: true };
    });
  },
});
/** the names each `nspawn-shared:ID` module is used for in a part's bundle TEXT, into NAMES (ID -> Set) */
function sharedNames(text, names) {
  for (const m of text.matchAll(/(?:\bvar\s+|,\s*)(\w+)\s*=\s*(?:__toESM\()?require\("nspawn-shared:([^"]+)"\)/g)) {
    const used = names.get(m[2]) ?? new Set();
    for (const u of text.matchAll(new RegExp(`\\b${m[1]}\\.(\\w+)`, 'g'))) used.add(u[1]);
    if (used.size === 0) throw new Error(`bundle: no name of ${m[2]} found in a part's bundle (its import changed shape?)`);
    names.set(m[2], used);
  }
}
/**
 * The entry of nspawn's bundle: the command, after a module that registers what its parts take from it (NAMES, from
 * sharedNames()) for bin/load.cjs (globalThis[Symbol.for('nspawn.shared')], by `nspawn-shared:` ID).
 */
const commandWithShared = (entry, names) => ({
  name: 'command-with-shared',
  setup(b) {
    b.onResolve({ filter: /^nspawn-(entry|shared-register)$/ }, (args) => ({ path: args.path, namespace: 'nspawn-entry' }));
    b.onLoad({ filter: /.*/, namespace: 'nspawn-entry' }, (args) => {
      const root = join(here, '../..');
      if (args.path === 'nspawn-entry') return { contents: `import 'nspawn-shared-register';\nimport ${JSON.stringify(entry)};\n`, resolveDir: here, loader: 'js' };
      const ids = [...names.keys()].sort();
      const imports = ids.map((id, i) => `import { ${[...names.get(id)].map((n) => `${n} as s${i}_${n}`).join(', ')} } from ${JSON.stringify(join(root, id))};`);
      const table = ids.map((id, i) => `${JSON.stringify(id)}: { ${[...names.get(id)].map((n) => `${n}: s${i}_${n}`).join(', ')} }`);
      return { contents: `${imports.join('\n')}\nglobalThis[Symbol.for('nspawn.shared')] = { ${table.join(', ')} };\n`, resolveDir: here, loader: 'js' };
    });
  },
});
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const entries = commandEntries();
  for (const b of Object.keys(pkg.bin ?? {}))
    if (!entries[b]) throw new Error(`bin "${b}" in package.json has no source (looked for ${sourcesOf(b).join(', ')})`);
  mkdirSync(join(here, 'dist'), { recursive: true });
  const require = createRequire(join(here, 'package.json'));
  const runtimeDir = dirname(require.resolve('@nspawn/runtime/package.json'));

  // the seccomp programs of the usual starts, computed now by the runtime being bundled (see nspawnSeccompBytes())
  const runtime = await import(pathToFileURL(join(runtimeDir, 'dist/index.js')).href);
  const precomputed = runtime.precomputeSeccompPrograms();
  writeFileSync(join(here, 'dist/precomputed-seccomp.json'), `${JSON.stringify(precomputed, null, 1)}\n`);
  const cjs = {
    outdir: join(here, 'dist'),
    outExtension: { '.js': '.cjs' },
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node24',
    // import() as require(): bin/load.cjs runs the bundle as a vm.Script, where import() needs an experimental
    // loader hook
    supported: { 'dynamic-import': false },
    // less to read and to hash at every start (names are kept: stack traces still say which function);
    // NSPAWN_BUNDLE_MINIFY=0 for a readable bundle (profiling)
    minifyWhitespace: process.env.NSPAWN_BUNDLE_MINIFY !== '0',
    minifySyntax: process.env.NSPAWN_BUNDLE_MINIFY !== '0',
    sourcemap: 'linked',
    logLevel: 'warning',
    metafile: process.env.NSPAWN_BUNDLE_META === '1',
  };
  // @nspawn/machined is a bundle of its own (nspawn-machined.cjs), read only on a systemd host or for --property=, and
  // its D-Bus library another (nspawn-dbus.cjs, read on the first connect).
  const { nspawn: nspawnEntry, ...otherEntries } = entries;
  const mainBuild = (entryPoints, separate, extra = []) => build({
    ...cjs,
    entryPoints,
    // the libraries are ESM and use import.meta.url to find files beside them
    // (import.meta.url only when asked for: making the URL costs at start-up)
    define: { 'import.meta.url': '__nspawn_meta.url', 'import.meta.dirname': '__dirname', __NSPAWN_PRECOMPUTED_SECCOMP__: JSON.stringify(precomputed) },
    banner: { js: 'var __nspawn_meta = { get url() { return require("node:url").pathToFileURL(__filename).href; } };' },
    // @nspawn/net (and netlink's large generated code) is a bundle of its own, loaded only by a container with a
    // network: parsing it on every start would cost ~10 ms
    // nspawnd's web view (--web) is a bundle of its own too, with the browser's files in dist/web/
    plugins: [...extra, netlinkPrebuilds, netSeparate, execaSeparate, imageSeparate, separate, webSeparate],
  });
  if (nspawnEntry) {
    // the start's parts first (what they take from nspawn's bundle is known then), each with @nspawn/machined,
    // @nspawn/image and the like apart as for nspawn's own
    const parts = startParts(require);
    const names = new Map();
    for (const [name, file] of Object.entries(parts)) {
      const shared = new Set();
      const r = await build({
        ...cjs,
        entryPoints: { [name]: file },
        write: false,
        define: { 'import.meta.url': '__nspawn_import_meta_url' },
        banner: { js: 'var __nspawn_import_meta_url = require("node:url").pathToFileURL(__filename).href;' },
        plugins: [
          netSeparate,
          execaSeparate,
          ...(name === 'nspawn-image-run' ? [] : [imageSeparate]),
          machinedSeparate,
          sharedWithCommand(parts, file, shared, PART_INLINE[name]),
        ],
      });
      for (const f of r.outputFiles) {
        writeFileSync(f.path, f.contents);
        if (f.path.endsWith('.cjs')) sharedNames(f.text, names);
      }
      if (r.metafile) writeFileSync(join(here, `dist/${name}.meta.json`), JSON.stringify(r.metafile));
    }
    // nspawn keeps @nspawn/machined apart too now: nothing of a plain start's path asks it anything (sd_booted() is
    // @nspawn/assembly's), and it is run from its code cache when a part needs it
    const r = await mainBuild({ nspawn: 'nspawn-entry' }, machinedSeparate, [commandWithShared(nspawnEntry, names), partsSeparate(parts)]);
    if (r.metafile) writeFileSync(join(here, 'dist/nspawn.meta.json'), JSON.stringify(r.metafile));
  }
  await mainBuild(otherEntries, machinedSeparate);
  await build({ ...cjs, entryPoints: { 'nspawn-machined': require.resolve('@nspawn/machined') }, plugins: [dbusSeparate] });
  await build({ ...cjs, entryPoints: { 'nspawn-dbus': dbusEntry(require) } });
  if (entries.nspawnd) await buildWeb(join(here, 'dist'), cjs);
  await build({ ...cjs, entryPoints: { 'nspawn-execa': require.resolve('execa') } });
  await build({
    ...cjs,
    entryPoints: { 'nspawn-image': join(dirname(require.resolve('@nspawn/assembly/package.json')), 'node_modules/@nspawn/image/dist/index.js') },
    define: { 'import.meta.url': '__nspawn_import_meta_url' },
    banner: { js: 'var __nspawn_import_meta_url = require("node:url").pathToFileURL(__filename).href;' },
  });
  await build({
    ...cjs,
    entryPoints: { 'nspawn-net': join(dirname(require.resolve('@nspawn/assembly/package.json')), 'node_modules/@nspawn/net/dist/index.js') },
    define: { 'import.meta.url': '__nspawn_import_meta_url' },
    banner: { js: 'var __nspawn_import_meta_url = require("node:url").pathToFileURL(__filename).href;' },
    plugins: [netlinkPrebuilds],
  });
  const helpers = [[join(runtimeDir, 'native/build/nspawn-helper'), 'nspawn-helper']];
  // the sys addon (optional: the runtime falls back to process.execve() and koffi), built here and prebuilt
  if (existsSync(join(runtimeDir, 'native/build/nspawn-sys.node'))) helpers.push([join(runtimeDir, 'native/build/nspawn-sys.node'), 'nspawn-sys.node']);
  const prebuilt = join(runtimeDir, 'native/prebuilt');
  if (existsSync(prebuilt))
    for (const f of readdirSync(prebuilt).filter((f) => f.startsWith('nspawn-helper-') || f.startsWith('nspawn-sys-') || f.startsWith('nspawn-oci-front-'))) helpers.push([join(prebuilt, f), f]);
  // nspawn-oci's native front end (bin/nspawn-oci runs dist/nspawn-oci-front-linux-ARCH): this machine's build, named
  // for its architecture, when no prebuilt one was made for it
  const front = join(runtimeDir, 'native/build/nspawn-oci-front');
  if (existsSync(front) && !helpers.some(([, to]) => to === `nspawn-oci-front-linux-${process.arch}`)) helpers.push([front, `nspawn-oci-front-linux-${process.arch}`]);
  // copied beside and renamed over: a helper that running containers execute cannot be written to (ETXTBSY)
  for (const [from, to] of helpers) {
    copyFileSync(from, join(here, 'dist', `${to}.tmp`));
    chmodSync(join(here, 'dist', `${to}.tmp`), 0o755);
    renameSync(join(here, 'dist', `${to}.tmp`), join(here, 'dist', to));
  }
}
