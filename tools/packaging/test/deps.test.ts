// A library pulls in nothing it does not use, and declares everything it imports.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dependencyReport, packageOf } from '../lib/deps.mjs';
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
