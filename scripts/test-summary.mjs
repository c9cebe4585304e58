#!/usr/bin/env node
// Adds up the vitest JSON reports (vitest-report.json) of every workspace package that has a `test` script into
// one closing line: "tests: N passed, N failed, N skipped". Fails (exit 1) when:
//   - a test or a suite failed, or no test passed;
//   - a package with a `test` script wrote no report (its run crashed, or never ran), or an old one
//     (--since MS: a report written before MS, the run's start, is left from an earlier run);
//   - a test was skipped (or is a todo) that is not in scripts/skip-allow-list.mjs, or whose reason that list's
//     check does not prove on this machine.
// Each allowed skip is printed with the reason and what the check saw.
//   node scripts/test-summary.mjs [--since MS] [--root DIR]
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ALLOWED_SKIPS } from './skip-allow-list.mjs';

/** Workspace packages (packages/*, apps/*, tools/*) with a test script: { name, dir }. */
export function testedPackages(root) {
  const out = [];
  for (const group of ['packages', 'apps', 'tools']) {
    const base = join(root, group);
    for (const d of existsSync(base) ? readdirSync(base).sort() : []) {
      const f = join(base, d, 'package.json');
      if (!existsSync(f)) continue;
      const pkg = JSON.parse(readFileSync(f, 'utf8'));
      if (pkg.scripts?.test) out.push({ name: pkg.name, dir: join(base, d) });
    }
  }
  return out;
}

/** "describe > describe > title" of an assertion result of a vitest JSON report. */
export const testName = (a) => [...(a.ancestorTitles ?? []), a.title].join(' > ');

/**
 * The summary of the reports under ROOT: { passed, failed, skipped, problems: [line], allowed: [line] }.
 * `allowList` and `since` for the tests of this script.
 */
export async function summarize(root, { allowList = ALLOWED_SKIPS, since } = {}) {
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  const problems = [];
  const allowed = [];
  const proofs = new Map();
  for (const p of testedPackages(root)) {
    const f = join(p.dir, 'vitest-report.json');
    if (!existsSync(f)) {
      problems.push(`${p.name}: wrote no test report (${relative(root, f)}): its tests did not run or crashed`);
      continue;
    }
    const r = JSON.parse(readFileSync(f, 'utf8'));
    if (since !== undefined && !(r.startTime >= since)) {
      problems.push(`${p.name}: ${relative(root, f)} is from an earlier run (${new Date(r.startTime).toISOString()})`);
      continue;
    }
    passed += r.numPassedTests ?? 0;
    // a suite that failed to load has no failed tests but counts as a failure
    failed += Math.max(r.numFailedTests ?? 0, r.numFailedTestSuites ?? 0);
    for (const file of r.testResults ?? []) {
      const rel = relative(p.dir, file.name);
      for (const a of file.assertionResults ?? []) {
        if (!['skipped', 'pending', 'todo', 'disabled'].includes(a.status)) continue;
        skipped++;
        const name = testName(a);
        const what = `${p.name} ${rel} > ${name}`;
        const entry = allowList.find((e) => e.package === p.name && e.file === rel && e.test === name);
        if (!entry) {
          problems.push(`${a.status === 'todo' ? 'todo' : 'skipped'} and not in scripts/skip-allow-list.mjs: ${what}`);
          continue;
        }
        if (!proofs.has(entry)) proofs.set(entry, await entry.proves());
        const proof = proofs.get(entry);
        if (proof.ok) allowed.push(`allowed skip: ${what}: ${entry.reason} (${proof.detail})`);
        else problems.push(`skipped, but "${entry.reason}" is not so here: ${what}: ${proof.detail}`);
      }
    }
  }
  if (passed === 0) problems.push('no test passed');
  return { passed, failed, skipped, problems, allowed };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const opt = (name) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
  const root = opt('--root') ?? join(import.meta.dirname, '..');
  const since = opt('--since') === undefined ? undefined : Number(opt('--since'));
  const s = await summarize(root, { since });
  for (const l of s.allowed) console.log(l);
  for (const l of s.problems) console.error(`test summary: ${l}`);
  console.log(`tests: ${s.passed} passed, ${s.failed} failed, ${s.skipped} skipped`);
  process.exitCode = s.failed > 0 || s.problems.length > 0 ? 1 : 0;
}
