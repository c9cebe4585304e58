#!/usr/bin/env node
// Every package's tests (turbo, one package at a time, all of them even when one fails), between a leak check
// baseline and the comparison with it, then the summary (scripts/test-summary.mjs). `pnpm test` and
// scripts/test.sh run this. Exit 1 when a test failed, a skip is not allowed, a package wrote no report, or the
// tests left something behind; 2 when the leak check cannot look (a tool missing).
//   node scripts/run-tests.mjs
import { mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { testedPackages } from './test-summary.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const node = (script, args) => execa(process.execPath, [join(root, 'scripts', script), ...args], { cwd: root, stdio: 'inherit', reject: false });

// (in the repository, not /tmp: the leak check looks at /tmp)
const baseline = join(root, '.turbo', 'leak-baseline.json');
mkdirSync(dirname(baseline), { recursive: true });
for (const p of testedPackages(root)) rmSync(join(p.dir, 'vitest-report.json'), { force: true });

const saved = await node('check-leaks.mjs', ['--save', baseline]);
if (saved.exitCode !== 0) process.exit(saved.exitCode ?? 2);
const start = Date.now();
const tests = await node('turbo.mjs', ['run', 'test', '--concurrency=1', '--continue', '--output-logs=new-only']);
const leaks = await node('check-leaks.mjs', ['--against', baseline]);
const summary = await node('test-summary.mjs', ['--since', String(start)]);
process.exitCode = [tests, leaks, summary].find((r) => r.exitCode !== 0)?.exitCode ?? 0;
