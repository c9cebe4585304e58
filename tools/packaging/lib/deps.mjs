// Which packages a library's published code imports, against what its package.json declares.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';

const BUILTIN = new Set(builtinModules);
const IMPORT = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\brequire\s*\(\s*)['"]([^'"\n]+)['"]/g;

/** The files whose imports reach users: src/ (not tests) and the package's own scripts in "files". */
function sourceFiles(dir) {
  const out = [];
  const walk = (d) => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) {
        if (f !== 'test' && f !== '__tests__' && f !== 'node_modules') walk(p);
      } else if (/\.(m|c)?[jt]s$/.test(f) && !/\.(test|spec|bench)\.[mc]?[jt]s$/.test(f) && !f.endsWith('.d.ts')) out.push(p);
    }
  };
  walk(join(dir, 'src'));
  try {
    walk(join(dir, 'scripts'));
  } catch {
    /* no scripts */
  }
  return out;
}

/** Package name of a bare specifier, or undefined for relative paths and Node built-ins. */
export function packageOf(spec) {
  if (spec.startsWith('.') || spec.startsWith('/') || spec.startsWith('node:') || spec.startsWith('#')) return undefined;
  const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];
  return BUILTIN.has(name) ? undefined : name;
}

/** { imported: Map(name -> first file), declared: Set, undeclared: [...], unused: [...] } */
export function dependencyReport(dir) {
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  const imported = new Map();
  for (const f of sourceFiles(dir)) {
    const text = readFileSync(f, 'utf8').replace(/^\s*\/\/.*$/gm, '').replace(/\/\*[\s\S]*?\*\//g, '');
    for (const m of text.matchAll(IMPORT)) {
      const name = packageOf(m[1]);
      if (name && name !== pkg.name && !imported.has(name)) imported.set(name, f);
    }
  }
  const declared = new Set([
    ...Object.keys(pkg.dependencies ?? {}),
    ...Object.keys(pkg.peerDependencies ?? {}),
    ...Object.keys(pkg.optionalDependencies ?? {}),
  ]);
  return {
    imported,
    declared,
    undeclared: [...imported.keys()].filter((n) => !declared.has(n)),
    unused: [...declared].filter((n) => !imported.has(n)),
  };
}

/**
 * The packages a built bundle (DIR/dist/*.cjs, an app's esbuild output) still loads at run time: the bare
 * specifiers of its require(), import() and require.resolve() calls, Node built-ins left out, and `nspawn-shared:`
 * ones (a part of nspawn's start taking a module from nspawn's own bundle: apps/cli/bin/load.cjs). Everything else of
 * ours is inside the bundle.
 */
export function bundleExternals(dir) {
  const out = new Map();
  const dist = join(dir, 'dist');
  for (const f of readdirSync(dist).filter((f) => f.endsWith('.cjs'))) {
    const text = readFileSync(join(dist, f), 'utf8');
    for (const m of text.matchAll(/\b(?:require\d*|import|\.resolve)\(\s*["']([^"'\n]+)["']\s*\)/g)) {
      if (m[1].startsWith('nspawn-shared:')) continue;
      const name = packageOf(m[1]);
      if (name && !out.has(name)) out.set(name, f);
    }
  }
  return out;
}
