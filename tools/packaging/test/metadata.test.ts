// What npm shows of each package: the license (the LICENSE file at the top, in every tarball), where its source is
// (repository with its directory), its home page and where to report bugs. Every package.json of the workspace,
// the root's and private ones too.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { execaSync } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packAll, ROOT, workspacePackages } from '../lib/workspace.mjs';

const REPO_URL = 'https://github.com/nspawn/nspawn';
const all = [...workspacePackages('packages'), ...workspacePackages('apps'), ...workspacePackages('tools')];
const published = all.filter((p) => !p.pkg.private);
const license = readFileSync(join(ROOT, 'LICENSE'), 'utf8');

describe('the LICENSE file', () => {
  it('is the MIT license, the one every package.json names', () => {
    expect(license).toMatch(/^MIT License\n\nCopyright \(c\) \d{4} /);
    expect(license).toContain('THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND');
  });
  it('is in every published tarball', () => {
    for (const p of published) expect(tarballs.has(p.name), p.name).toBe(true);
    for (const [name, tgz] of tarballs) expect(execaSync('tar', ['-xOzf', tgz, 'package/LICENSE']).stdout, name).toBe(license.trimEnd());
  });
});

describe.each([{ dir: ROOT, name: 'the root', pkg: JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) }, ...all].map((p) => [p.name, p] as const))(
  '%s package.json',
  (_name, p) => {
    const dir = relative(ROOT, p.dir);
    it('names the license: MIT', () => {
      expect(p.pkg.license).toBe('MIT');
    });
    it('names the repository, with its directory', () => {
      expect(p.pkg.repository).toEqual({ type: 'git', url: `git+${REPO_URL}.git`, ...(dir ? { directory: dir } : {}) });
      if (dir) expect(existsSync(join(ROOT, p.pkg.repository.directory, 'package.json'))).toBe(true);
    });
    it('has a home page (its README on the repository) and a bug tracker', () => {
      expect(p.pkg.homepage).toBe(dir ? `${REPO_URL}/tree/main/${dir}#readme` : `${REPO_URL}#readme`);
      expect(p.pkg.bugs).toEqual({ url: `${REPO_URL}/issues` });
    });
  },
);

let work = '';
let tarballs = new Map<string, string>();
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'nspawn-test-meta-'));
  tarballs = packAll(published, join(work, 'tarballs'));
});
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});
