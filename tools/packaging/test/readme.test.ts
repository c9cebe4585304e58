// Each library is documented for someone working on it alone: a README with an install line, a runnable
// example (see standalone.test.ts), its API, design notes and how it differs from systemd; its own tests,
// runnable from its directory; its typed API docs (docs.test.ts).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { libraries, ROOT } from '../lib/workspace.mjs';

const SECTIONS: [string, RegExp][] = [
  ['Install', /^##+ .*Install/im],
  ['Example', /^##+ .*Example/im],
  ['API', /^##+ .*\bAPI\b/m],
  ['Design', /^##+ .*(Design|How it works|Internals|What it does|How .* uses it)/im],
  ['differences from systemd', /^##+ .*(differ|systemd)/im],
];

describe.each(libraries().map((l) => [l.name, l] as const))('%s', (_n, lib) => {
  const readme = readFileSync(join(lib.dir, 'README.md'), 'utf8');
  it('README: install, example, API, design, differences from systemd', () => {
    expect(readme.startsWith(`# ${lib.name}`), 'starts with "# NAME"').toBe(true);
    for (const [what, re] of SECTIONS) expect(re.test(readme), `${lib.name} README.md has no ${what} section (${re})`).toBe(true);
    expect(readme).toMatch(new RegExp(`(pnpm add|npm install|npm i) ${lib.name.replace('/', '\\/')}`));
  });
  it('has its own tests, runnable from its directory (pnpm test), and its typecheck', () => {
    expect(lib.pkg.scripts?.test).toMatch(/vitest/);
    expect(lib.pkg.scripts?.typecheck).toBeDefined();
    expect(existsSync(join(lib.dir, 'vitest.config.ts'))).toBe(true);
  });
  it('is named in CONTRIBUTING.md and the top README', () => {
    for (const f of ['CONTRIBUTING.md', 'README.md']) expect(readFileSync(join(ROOT, f), 'utf8'), f).toContain(lib.name);
  });
});
