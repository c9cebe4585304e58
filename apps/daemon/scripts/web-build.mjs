// The web view's build, shared by apps/daemon/scripts/bundle.mjs and apps/cli/scripts/bundle.mjs (which ships
// nspawnd in @nspawn/cli): the view's server as a bundle of its own (nspawnd-web.cjs, loaded only with --web),
// the import-tar child (nspawnd-import.cjs), and the browser's files in web/ (index.html, style.css, app.js with
// uPlot bundled in, uPlot.min.css): everything from the workspace and node_modules now, nothing fetched at run time.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const daemon = join(dirname(fileURLToPath(import.meta.url)), '..');
const assets = join(daemon, 'web-assets');

/**
 * An esbuild plugin for the daemon's bundle: `import('./web/server.js')` stays out of it, as a require of
 * ./nspawnd-web.cjs beside it (nspawnd without --web never reads the view's code).
 */
export const webSeparate = {
  name: 'web-separate',
  setup(b) {
    b.onResolve({ filter: /^\.\/web\/server\.js$/ }, () => ({ path: './nspawnd-web.cjs', external: true }));
    // the image transfers (@nspawn/import) likewise, loaded at the first transfer
    b.onResolve({ filter: /^\.\/transfer-ops\.js$/ }, () => ({ path: './nspawnd-transfers.cjs', external: true }));
  },
};

/**
 * Builds the view into OUTDIR: nspawnd-web.cjs, nspawnd-import.cjs, nspawnd-transfers.cjs (nspawnd's image
 * transfers) and web/. CJS: the caller's esbuild options
 * for a Node bundle (format, target, minification); EXTERNAL: what stays in node_modules (koffi).
 */
export async function buildWeb(outdir, cjs, external = ['koffi']) {
  const node = {
    ...cjs,
    outdir,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    outExtension: { '.js': '.cjs' },
    external,
    define: { 'import.meta.url': '__nspawn_web_meta_url', 'import.meta.dirname': '__dirname' },
    banner: { js: 'var __nspawn_web_meta_url = require("node:url").pathToFileURL(__filename).href;' },
  };
  await build({
    ...node,
    entryPoints: {
      'nspawnd-web': join(daemon, 'src/web/server.ts'),
      'nspawnd-import': join(daemon, 'src/web/import-child.ts'),
      'nspawnd-transfers': join(daemon, 'src/transfer-ops.ts'),
    },
  });
  await buildWebAssets(join(outdir, 'web'));
}

/** The browser's files into DIR (made anew). */
export async function buildWebAssets(dir) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  await build({
    entryPoints: [join(assets, 'app.ts')],
    outfile: join(dir, 'app.js'),
    bundle: true,
    platform: 'browser',
    format: 'iife',
    target: ['chrome110', 'firefox115', 'safari16'],
    minify: true,
    legalComments: 'eof',
    logLevel: 'warning',
  });
  for (const f of readdirSync(assets)) if (f.endsWith('.html') || f.endsWith('.css')) copyFileSync(join(assets, f), join(dir, f));
  // uPlot's stylesheet, from the package the build has (a devDependency of the daemon)
  const require = createRequire(join(daemon, 'package.json'));
  copyFileSync(require.resolve('uplot/dist/uPlot.min.css'), join(dir, 'uPlot.min.css'));
}
