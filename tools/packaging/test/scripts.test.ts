// The repository's own test and build machinery (scripts/): turbo's cache key has the machine's C toolchains,
// turbo passes the CA and proxy variables through to the tasks, the summary fails a run on a skip the machine does not
// prove and on a missing report, and the leak check sees every test prefix and fails loudly without its tools.
import { mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, execaSync } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../lib/workspace.mjs';

const script = (name: string) => join(ROOT, 'scripts', name);
let work = '';
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'nspawn-test-scripts-'));
});
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** A directory of links to every command on PATH except NAMES: a machine without them. */
function pathWithout(names: string[], dir: string): string {
  mkdirSync(dir, { recursive: true });
  const seen = new Set(names);
  for (const d of (process.env.PATH ?? '').split(':').filter(Boolean)) {
    let entries: string[] = [];
    try {
      entries = execaSync('ls', ['-1', d]).stdout.split('\n').filter(Boolean);
    } catch {
      continue;
    }
    for (const f of entries) {
      if (seen.has(f)) continue;
      seen.add(f);
      symlinkSync(join(d, f), join(dir, f));
    }
  }
  return dir;
}

describe('the toolchain in turbo\'s cache key', () => {
  it('the fingerprint probes every compiler the native programs are built with (the runtime\'s scripts/cc.mjs)', async () => {
    const { probedCompilers } = await import(script('toolchain.mjs'));
    const { COMPILERS, CROSS } = await import(join(ROOT, 'packages/runtime/scripts/cc.mjs'));
    const line = ([cc, args]: [string, string[]]) => `${cc} ${args.join(' ')}`.trim();
    const tried = (Object.values({ ...CROSS, ...COMPILERS }) as Array<Array<[string, string[]]>>).flat().map(line);
    expect(tried.length).toBeGreaterThanOrEqual(4);
    const probed = (probedCompilers({}) as Array<[string, string[]]>).map(line);
    expect(probed).toEqual(expect.arrayContaining([...new Set(tried.filter((t) => t !== line([process.env.CC || 'cc', []]))), 'cc']));
    expect(readFileSync(join(ROOT, 'packages/runtime/scripts/cc.mjs'), 'utf8')).toMatch(/process\.env\.CC \|\| 'cc'/);
  });

  it('changes when a cross compiler comes or goes, and only the runtime\'s build and what is built from it are rebuilt', async () => {
    const hashes = async (path: string) => {
      const r = await execa(process.execPath, [script('turbo.mjs'), 'run', 'build', '--dry=json'], { cwd: ROOT, env: { PATH: path } });
      const dry = JSON.parse(r.stdout) as { tasks: Array<{ taskId: string; hash: string }> };
      return Object.fromEntries(dry.tasks.map((t) => [t.taskId, t.hash]));
    };
    const withClang = await hashes(process.env.PATH!);
    // a machine where clang (the arm64 cross compiler here) is not installed
    const without = await hashes(pathWithout(['clang', 'aarch64-linux-gnu-gcc'], join(work, 'no-clang')));
    expect(without['@nspawn/runtime#build']).not.toBe(withClang['@nspawn/runtime#build']);
    expect(without['@nspawn/cli#build']).not.toBe(withClang['@nspawn/cli#build']);
    expect(without['@nspawn/settings#build']).toBe(withClang['@nspawn/settings#build']);
    // the same machine, the same key
    expect(await hashes(process.env.PATH!)).toEqual(withClang);
  });

  it('turbo passes the CA and proxy variables through to the tasks (npm behind a TLS-inspecting proxy)', async () => {
    // a scratch monorepo with this repository's globalPassThroughEnv and a task that prints its environment
    const repo = join(work, 'turbo-env');
    mkdirSync(join(repo, 'packages/a'), { recursive: true });
    const ours = JSON.parse(readFileSync(join(ROOT, 'turbo.json'), 'utf8'));
    writeFileSync(join(repo, 'turbo.json'), JSON.stringify({ globalPassThroughEnv: ours.globalPassThroughEnv, tasks: { env: { cache: false } } }));
    writeFileSync(join(repo, 'package.json'), JSON.stringify({ name: 'scratch', private: true, packageManager: 'pnpm@10.34.8' }));
    writeFileSync(join(repo, 'pnpm-workspace.yaml'), 'packages: ["packages/*"]\n');
    writeFileSync(join(repo, 'packages/a/package.json'), JSON.stringify({ name: 'a', scripts: { env: 'env > env.txt' } }));
    for (const args of [['init', '-q'], ['add', '-A'], ['-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-qm', 'scratch']]) await execa('git', args, { cwd: repo });
    const vars = {
      NODE_EXTRA_CA_CERTS: '/etc/ssl/pk-extra.pem',
      HTTPS_PROXY: 'http://pk-proxy:3128',
      https_proxy: 'http://pk-proxy:3128',
      NO_PROXY: 'localhost',
      npm_config_cafile: '/etc/ssl/pk-npm.pem',
      PK_UNLISTED: 'dropped',
    };
    await execa(join(ROOT, 'node_modules/.bin/turbo'), ['run', 'env'], { cwd: repo, env: { ...vars, TURBO_TELEMETRY_DISABLED: '1' } });
    const seen = Object.fromEntries(
      readFileSync(join(repo, 'packages/a/env.txt'), 'utf8')
        .split('\n')
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    const { PK_UNLISTED: _dropped, ...passed } = vars;
    expect(seen).toMatchObject(passed);
    expect(seen.PK_UNLISTED).toBeUndefined(); // (strict mode is on: the check would prove nothing otherwise)
  });
});

describe('the test summary (scripts/test-summary.mjs)', () => {
  /** A workspace with packages/NAME (a test script) and its vitest report (undefined: none) */
  function workspace(name: string, report?: object): string {
    const root = join(work, `ws-${name}`);
    mkdirSync(join(root, 'packages/p'), { recursive: true });
    writeFileSync(join(root, 'packages/p/package.json'), JSON.stringify({ name: '@pk/p', scripts: { test: 'vitest run' } }));
    if (report) writeFileSync(join(root, 'packages/p/vitest-report.json'), JSON.stringify(report));
    return root;
  }
  const result = (status: string, title = 'makes a link') => ({ ancestorTitles: ['links'], title, status });
  const report = (...results: object[]) => ({
    startTime: Date.now(),
    numPassedTests: results.filter((r: any) => r.status === 'passed').length,
    numFailedTests: 0,
    numFailedTestSuites: 0,
    testResults: [{ name: '/PKG/test/links.test.ts', assertionResults: results }],
  });
  const fix = (root: string, r: ReturnType<typeof report>) => {
    r.testResults[0]!.name = join(root, 'packages/p/test/links.test.ts');
    writeFileSync(join(root, 'packages/p/vitest-report.json'), JSON.stringify(r));
    return root;
  };
  const entry = (ok: boolean) => ({ package: '@pk/p', file: 'test/links.test.ts', test: 'links > makes a link', reason: 'no such driver', proves: async () => ({ ok, detail: ok ? 'seen' : 'the driver is there' }) });
  let summarize: (root: string, o?: object) => Promise<{ passed: number; skipped: number; problems: string[]; allowed: string[] }>;
  beforeAll(async () => {
    ({ summarize } = await import(script('test-summary.mjs')));
  });

  it('passes a run whose skip is allowed and proved, and prints it', async () => {
    const root = fix(workspace('allowed'), report(result('passed', 'other'), result('skipped')));
    const s = await summarize(root, { allowList: [entry(true)] });
    expect(s.problems).toEqual([]);
    expect(s.allowed).toEqual(['allowed skip: @pk/p test/links.test.ts > links > makes a link: no such driver (seen)']);
    expect([s.passed, s.skipped]).toEqual([1, 1]);
  });
  it('fails a skip that is not in the allow-list, and a todo', async () => {
    const root = fix(workspace('unlisted'), report(result('passed', 'other'), result('skipped'), result('todo', 'later')));
    const s = await summarize(root, { allowList: [] });
    expect(s.problems).toHaveLength(2);
    expect(s.problems[1]).toMatch(/^todo and not in scripts\/skip-allow-list\.mjs: @pk\/p test\/links\.test\.ts > links > later$/);
  });
  it('fails a skip whose reason the machine does not show', async () => {
    const root = fix(workspace('unproved'), report(result('passed', 'other'), result('skipped')));
    const s = await summarize(root, { allowList: [entry(false)] });
    expect(s.problems).toEqual(['skipped, but "no such driver" is not so here: @pk/p test/links.test.ts > links > makes a link: the driver is there']);
  });
  it('fails a package that wrote no report, or one from an earlier run', async () => {
    expect((await summarize(workspace('none'))).problems[0]).toMatch(/^@pk\/p: wrote no test report/);
    const root = fix(workspace('old'), { ...report(result('passed')), startTime: 1000 });
    expect((await summarize(root, { since: 2000 })).problems[0]).toMatch(/is from an earlier run/);
  });
  it('exits 1 on a problem and prints the closing line last', async () => {
    const root = fix(workspace('cli'), report(result('passed', 'other'), result('skipped')));
    const r = await execa(process.execPath, [script('test-summary.mjs'), '--root', root], { reject: false });
    expect(r.exitCode).toBe(1);
    expect(r.stdout.split('\n').pop()).toBe('tests: 1 passed, 0 failed, 1 skipped');
    expect(r.stderr).toContain('skipped and not in scripts/skip-allow-list.mjs');
  });
  it('every entry of the real allow-list names a test that exists, with a check that runs', async () => {
    const { ALLOWED_SKIPS } = await import(script('skip-allow-list.mjs'));
    expect(ALLOWED_SKIPS.length).toBeGreaterThan(0);
    for (const e of ALLOWED_SKIPS) {
      const dir = [join(ROOT, 'packages'), join(ROOT, 'apps')].map((g) => join(g, e.package.replace('@nspawn/', ''))).find((d) => {
        try {
          return JSON.parse(readFileSync(join(d, 'package.json'), 'utf8')).name === e.package;
        } catch {
          return false;
        }
      });
      expect(dir, e.package).toBeDefined();
      expect(readFileSync(join(dir!, e.file), 'utf8'), `${e.file}: ${e.test}`).toContain(e.test.split(' > ').pop());
      const proof = await e.proves();
      expect(typeof proof.ok).toBe('boolean');
      expect(proof.detail).not.toMatch(/could not run/);
    }
  });
});

describe('the leak check (scripts/check-leaks.mjs)', () => {
  const leaks = (args: string[], env?: NodeJS.ProcessEnv) =>
    execa(process.execPath, [script('check-leaks.mjs'), ...args], { reject: false, ...(env ? { env, extendEnv: false } : {}) });

  it('names what was made since the baseline under each test prefix, in /tmp and /var/tmp', async () => {
    const baseline = join(work, 'baseline.json');
    expect((await leaks(['--save', baseline])).exitCode).toBe(0);
    const made = [mkdtempSync('/var/tmp/ut-pk-'), mkdtempSync('/var/tmp/bt-pk-'), mkdtempSync('/var/tmp/nt-pk-'), mkdtempSync('/var/tmp/ov-pk-'), mkdtempSync('/tmp/dm-pk-'), mkdtempSync('/tmp/dc-pk-')];
    try {
      const r = await leaks(['--against', baseline]);
      expect(r.exitCode).toBe(1);
      for (const m of made) expect(r.stderr).toContain(m);
    } finally {
      for (const m of made) rmSync(m, { recursive: true, force: true });
    }
  });
  it("names a cgroup made since the baseline at the top of a hierarchy (a reference's nspawn-ref-* of @nspawn/test-kit, a slice, payload/)", async () => {
    const baseline = join(work, 'baseline-cg.json');
    expect((await leaks(['--save', baseline])).exitCode).toBe(0);
    const unified = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')).find((f) => f[f.indexOf('-') + 1] === 'cgroup2')?.[4];
    expect(unified, 'a cgroup2 mount').toBeDefined();
    const cg = `${unified}/nspawn-ref-pk${process.pid}`;
    mkdirSync(cg);
    try {
      const r = await leaks(['--against', baseline]);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain(`leak check: the tests left topCgroups behind: ${cg}`);
    } finally {
      rmdirSync(cg);
    }
  });
  it('fails (exit 2) when a tool it needs is missing, naming it, instead of reading nothing', async () => {
    const bin = pathWithout(['nft'], join(work, 'no-nft'));
    const r = await leaks([], { PATH: bin });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('leak check: nft is not installed (Debian: apt-get install nftables)');
  });
  it('fails (exit 2) without the baseline it is told to compare with', async () => {
    const r = await leaks(['--against', join(work, 'no-such-baseline.json')]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/no baseline/);
  });
  it('pnpm test and scripts/test.sh compare with a baseline saved before the tests (scripts/run-tests.mjs)', () => {
    expect(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).scripts.test).toBe('node scripts/run-tests.mjs');
    expect(readFileSync(script('test.sh'), 'utf8')).toMatch(/^node scripts\/run-tests\.mjs/m);
    const runner = readFileSync(script('run-tests.mjs'), 'utf8');
    const order = ["'--save', baseline", "'run', 'test'", "'--against', baseline", "'test-summary.mjs'"].map((s) => runner.indexOf(s));
    expect(order.every((i) => i > 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
  });
});
