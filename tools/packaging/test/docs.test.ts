// Typed API documentation: typedoc (pinned) builds each library's site without errors, with a page entry
// for every value the library exports.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { libraries, ROOT } from '../lib/workspace.mjs';

/** scripts/docs.mjs (what `pnpm run docs` runs) */
const { buildDocs } = (await import(pathToFileURL(join(ROOT, 'scripts/docs.mjs')).href)) as {
  buildDocs: (dir: string, outRoot: string) => Promise<{ ok: boolean; out: string; log: string }>;
};

const out = mkdtempSync(join(tmpdir(), 'nspawn-test-docs-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('typedoc', () => {
  it('is pinned to one version', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    expect(pkg.devDependencies.typedoc).toMatch(/^\d+\.\d+\.\d+$/);
    expect(pkg.scripts.docs).toBeDefined();
  });
  for (const lib of libraries()) {
    it(`${lib.name}: builds without errors and documents every export`, async () => {
      const r = await buildDocs(lib.dir, out);
      expect(r.ok, r.log).toBe(true);
      const index = readFileSync(join(r.out, 'modules.html'), 'utf8');
      const mod = await import(pathToFileURL(join(lib.dir, 'dist/index.js')).href);
      for (const name of Object.keys(mod)) expect(index, `${lib.name}: ${name} not in the docs`).toContain(`>${name}<`);
    });
  }
});
