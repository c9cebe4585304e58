// A library pulls in nothing it does not use, and declares everything it imports. An app (apps/*: esbuild bundles)
// depends on exactly what its bundle still loads at run time; the libraries it bundles are devDependencies.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bundleExternals, dependencyReport, packageOf } from '../lib/deps.mjs';
import { libraries, workspacePackages } from '../lib/workspace.mjs';

describe('packageOf', () => {
  it('names packages and leaves out relative paths and built-ins', () => {
    expect(packageOf('@nspawn/settings')).toBe('@nspawn/settings');
    expect(packageOf('@scope/x/sub/path.js')).toBe('@scope/x');
    expect(packageOf('netlink/lib/x')).toBe('netlink');
    expect(packageOf('./plan.js')).toBeUndefined();
    expect(packageOf('node:fs')).toBeUndefined();
    expect(packageOf('fs')).toBeUndefined();
  });
});

describe.each(libraries().map((l) => [l.name, l] as const))('%s', (_name, lib) => {
  const report = dependencyReport(lib.dir);
  it('declares every package its code imports (in dependencies, not devDependencies)', () => {
    expect(report.undeclared, `imported by ${lib.name} but not in its dependencies`).toEqual([]);
  });
  it('has no dependency its code does not import', () => {
    expect(report.unused, `in ${lib.name}'s dependencies but never imported`).toEqual([]);
  });
  it('depends on workspace libraries only through workspace: ranges, never on an app', () => {
    const apps = new Set(workspacePackages('apps').map((a) => a.name));
    const libs = new Set(libraries().map((l) => l.name));
    for (const [dep, range] of Object.entries({ ...lib.pkg.dependencies, ...lib.pkg.peerDependencies } as Record<string, string>)) {
      expect(apps.has(dep), `${lib.name} depends on the app ${dep}`).toBe(false);
      if (libs.has(dep)) expect(range, `${lib.name} -> ${dep}`).toMatch(/^workspace:/);
    }
  });
  it('publishes only what users need ("files" set, tests left out)', () => {
    const pkg = JSON.parse(readFileSync(join(lib.dir, 'package.json'), 'utf8'));
    expect(Array.isArray(pkg.files), `${lib.name} has no "files" list`).toBe(true);
    expect(pkg.files).toContain('dist');
  });
});

describe.each(workspacePackages('apps').filter((a) => !a.pkg.private).map((a) => [a.name, a] as const))('%s (a bundle)', (_name, app) => {
  it('is built (its bundle is what is checked)', () => {
    expect(existsSync(join(app.dir, 'dist')), `${app.dir}/dist: run pnpm build`).toBe(true);
  });
  it('depends on exactly the packages its bundle loads at run time', () => {
    const externals = bundleExternals(app.dir);
    expect(externals.size, 'a bundle that loads nothing: is the scan broken?').toBeGreaterThan(0);
    expect(Object.keys(app.pkg.dependencies ?? {}).sort()).toEqual([...externals.keys()].sort());
  });
  it('has the workspace libraries it bundles as devDependencies, not dependencies', () => {
    const externals = bundleExternals(app.dir);
    const libs = new Set(libraries().map((l) => l.name));
    const imported = [...dependencyReport(app.dir).imported.keys()].filter((n) => libs.has(n));
    expect(imported.length).toBeGreaterThan(0);
    for (const lib of imported.filter((n) => !externals.has(n))) {
      expect(app.pkg.devDependencies ?? {}, `${app.name} bundles ${lib}`).toHaveProperty([lib]);
      expect(app.pkg.dependencies ?? {}, `${app.name} bundles ${lib}: not a dependency too`).not.toHaveProperty([lib]);
    }
  });
});
