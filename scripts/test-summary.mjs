#!/usr/bin/env node
// Adds up the vitest JSON reports of every workspace package into one closing line:
// "tests: N passed, N failed, N skipped". Fails when a suite failed or no test ran.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
let passed = 0;
let failed = 0;
let skipped = 0;
let reports = 0;
for (const group of ['packages', 'apps', 'tools']) {
  for (const name of existsSync(join(root, group)) ? readdirSync(join(root, group)) : []) {
    const f = join(root, group, name, 'vitest-report.json');
    if (!existsSync(f)) continue;
    reports++;
    const r = JSON.parse(readFileSync(f, 'utf8'));
    passed += r.numPassedTests ?? 0;
    // a suite that failed to load has no failed tests but counts as a failure
    failed += Math.max(r.numFailedTests ?? 0, r.numFailedTestSuites ?? 0);
    skipped += (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  }
}
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
if (reports === 0 || failed > 0 || passed === 0) process.exit(1);
