// The workspace as the packaging checks see it: which packages there are (found, never listed by hand),
// packing them as pnpm would publish them, fresh npm projects outside the workspace, and a PATH without
// a C compiler.
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
// (execaSync for the short ones the checks call between their own assertions; the long ones (npm install) are
// async: a test that blocks its worker for a minute makes vitest's RPC time out)
import { execa, execaSync } from 'execa';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** Every workspace package in `group` ('packages' = the libraries, 'apps'), from its package.json. */
export function workspacePackages(group = 'packages', root = ROOT) {
  const base = join(root, group);
  if (!existsSync(base)) return [];
  return readdirSync(base)
    .filter((d) => existsSync(join(base, d, 'package.json')))
    .sort()
    .map((d) => {
      const dir = join(base, d);
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
      return { dir, name: pkg.name, version: pkg.version, pkg };
    });
}

/** The libraries that get published: packages/* that are not private. */
export const libraries = (root = ROOT) => workspacePackages('packages', root).filter((p) => !p.pkg.private);

/** The file name `pnpm pack` gives a package's tarball. */
export const tarballName = (name, version) => `${name.replace(/^@/, '').replace('/', '-')}-${version}.tgz`;

/**
 * `pnpm pack` of each package into `dest` (workspace:* ranges become the versions, "files" decides the
 * contents). Returns name -> tarball path.
 */
export function packAll(pkgs, dest) {
  mkdirSync(dest, { recursive: true });
  const out = new Map();
  for (const p of pkgs) {
    execaSync('pnpm', ['pack', '--pack-destination', dest], { cwd: p.dir, stdin: 'ignore', stdout: 'ignore' });
    const file = join(dest, tarballName(p.name, p.version));
    if (!existsSync(file)) throw new Error(`pnpm pack of ${p.name} did not make ${file}`);
    out.set(p.name, file);
  }
  return out;
}

/** The package.json inside a tarball. */
export function tarballManifest(tgz) {
  return JSON.parse(execaSync('tar', ['-xOzf', tgz, 'package/package.json']).stdout);
}

/** The file list of a tarball (paths below package/). */
export function tarballFiles(tgz) {
  return execaSync('tar', ['-tzf', tgz])
    .stdout.split('\n')
    .filter(Boolean)
    .map((f) => f.replace(/^package\//, ''));
}

/**
 * A fresh npm project in `dir` that depends on `name` only. Every @nspawn/* package comes from the local
 * tarballs (an override pins each to its file, so npm never asks the registry for ours); anything else is
 * fetched from the npm cache or registry as a user's install would.
 */
export async function freshProject(dir, name, tarballs, { env = process.env } = {}) {
  mkdirSync(dir, { recursive: true });
  const spec = (n) => `file:${tarballs.get(n)}`;
  const overrides = Object.fromEntries([...tarballs.keys()].map((n) => [n, spec(n)]));
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: 'standalone-check', private: true, type: 'module', dependencies: { [name]: spec(name) }, overrides }, null, 2),
  );
  // (env as given, not merged into this process's: the no-compiler PATH must stay; NODE_EXTRA_CA_CERTS and the proxy
  // variables are in it, turbo passes them through: turbo.json)
  await execa('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: dir, env, extendEnv: false, stdin: 'ignore' });
  return dir;
}

const COMPILER = /^(?:[\w.]+-)*(?:cc|gcc|c89|c99|c\+\+|g\+\+|clang|clang\+\+|tcc|cpp)(?:-[\d.]+)?$/;

/**
 * A directory of links to every command on PATH except C compilers: a PATH for "a machine with no
 * compiler". Returns the env to run with (PATH set, CC unset).
 */
export function noCompilerEnv(binDir, env = process.env) {
  mkdirSync(binDir, { recursive: true });
  const seen = new Set();
  for (const d of (env.PATH ?? '').split(delimiter)) {
    if (!d || !existsSync(d)) continue;
    for (const f of readdirSync(d)) {
      if (seen.has(f) || COMPILER.test(f)) continue;
      seen.add(f);
      try {
        symlinkSync(join(d, f), join(binDir, f));
      } catch {
        /* a name we cannot link: leave it out */
      }
    }
  }
  const { CC: _cc, ...rest } = env;
  return { ...rest, PATH: binDir };
}
