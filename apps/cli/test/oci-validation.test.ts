/**
 * The OCI runtime validation suite (opencontainers/runtime-tools, pinned and vendored in the workplace's
 * `shared/oci-runtime-tools`, built offline with Debian's Go by its run.sh) against nspawn-oci, with runc as the
 * yardstick in the same run: nspawn-oci passes at least as many of its tests as runc, and every test either runtime
 * fails is in packages/oci README's table of failures with its reason.
 *
 * run.sh is found at $OCI_RUNTIME_TOOLS, beside the checkout (REPO/../shared/oci-runtime-tools/run.sh) or in
 * /work/shared; it builds
 * the suite once into /var/tmp/oci-runtime-tools and keeps it for the next run. The suite's tests put containers in
 * cgroups of their own at the top of the hierarchies (/cgrouptest, testdir/...), which runc leaves: those that appear
 * during this test go after it (rmdir only, empty ones). Needs root, golang-go and runc (scripts/setup.sh --test);
 * fails, never skips, without them.
 */
import { execa } from 'execa';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { removeCgroupTree } from '@nspawn/test-kit';
import { DEFAULT_ROOT, stopMonitor } from '@nspawn/oci';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mountsUnder, REPO } from './helpers/containers.js';

/** $OCI_RUNTIME_TOOLS, else the workplace's shared directory beside the checkout, else at /work/shared */
const RUN_SH =
  process.env.OCI_RUNTIME_TOOLS ??
  [resolve(REPO, '../shared/oci-runtime-tools/run.sh'), '/work/shared/oci-runtime-tools/run.sh'].find((p) => existsSync(p)) ??
  resolve(REPO, '../shared/oci-runtime-tools/run.sh');
const NSPAWN_OCI = join(REPO, 'apps/cli/bin/nspawn-oci');
const RUNC = '/usr/sbin/runc';

/** the directories at the top of every cgroup hierarchy */
function topCgroups(): string[] {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => ['cgroup', 'cgroup2'].includes(f[f.indexOf('-') + 1] ?? '') && (f[4] ?? '').startsWith('/sys/fs/cgroup'))
    .map((f) => f[4]!);
  return mounts.flatMap((m) => readdirSync(m, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => join(m, d.name)));
}

interface Score {
  /** per test: its "ok" and "not ok" counts */
  tests: Map<string, { ok: number; notOk: number }>;
  passed: string[];
  failed: string[];
  total: string;
}

async function suite(runtime: string): Promise<Score> {
  const r = await execa('bash', [RUN_SH, runtime], { reject: false, all: true, timeout: 40 * 60_000 });
  const tests = new Map<string, { ok: number; notOk: number }>();
  for (const m of r.all.matchAll(/^(\S+)\s+(\d+) ok\s+(\d+) not ok$/gm)) tests.set(m[1]!, { ok: Number(m[2]), notOk: Number(m[3]) });
  const total = /^oci-validation: .*$/m.exec(r.all)?.[0] ?? '';
  expect(r.exitCode, `run.sh ${runtime}:\n${r.all.slice(-2000)}`).toBe(0);
  expect(total, `run.sh ${runtime} printed no total:\n${r.all.slice(-2000)}`).not.toBe('');
  const passed = [...tests].filter(([, c]) => c.ok > 0 && c.notOk === 0).map(([t]) => t);
  const failed = [...tests.keys()].filter((t) => !passed.includes(t));
  return { tests, passed, failed, total };
}

/** what the suite's tests make in /tmp: their bundles (ocitestN, where a test run in the host's mount namespace
 * leaves its mounts) and runc's process files */
const suiteTemp = () => readdirSync('/tmp').filter((f) => /^(?:ocitest|runc-process)\d+$/.test(f)).map((f) => join('/tmp', f));

let before: string[] = [];
let tempBefore: string[] = [];
beforeAll(() => {
  expect(process.getuid?.(), 'the validation suite needs root').toBe(0);
  expect(existsSync(RUN_SH), `${RUN_SH} is missing (the workplace's shared/oci-runtime-tools beside the checkout, or $OCI_RUNTIME_TOOLS)`).toBe(true);
  expect(existsSync(RUNC), `${RUNC} is missing (apt-get install runc; scripts/setup.sh --test)`).toBe(true);
  before = topCgroups();
  tempBefore = suiteTemp();
});

afterAll(async () => {
  // the warm monitor of the suite's root (nspawn-oci's default: the suite passes no --root)
  await stopMonitor(DEFAULT_ROOT);
  // what the suite's tests left in /tmp: their mounts first (linux_ns_itype runs runc in the host's mount namespace,
  // and its container's /proc, /dev and /sys stay mounted on the bundle), deepest first, then the directories
  for (const d of suiteTemp().filter((t) => !tempBefore.includes(t))) {
    for (const m of mountsUnder(d).sort((a, b) => b.length - a.length)) await execa('umount', ['-l', m]);
    if (mountsUnder(d).length === 0) rmSync(d, { recursive: true, force: true });
  }
  // what the suite's containers left at the top of the hierarchies (runc leaves its cgroupsPath's parents)
  const left: string[] = [];
  for (const d of topCgroups().filter((c) => !before.includes(c))) {
    try {
      removeCgroupTree(d);
    } catch {
      left.push(d);
    }
  }
  expect(left, 'cgroups of the suite still in use').toEqual([]);
});

describe('the OCI runtime validation suite: nspawn-oci against runc in the same run (root)', () => {
  it('nspawn-oci passes at least as many tests as runc; every failure of either is in packages/oci README with its reason', async () => {
    const runc = await suite(RUNC);
    const ours = await suite(NSPAWN_OCI);
    console.log(`validation suite: ${runc.total}\nvalidation suite: ${ours.total}`);
    // the same tests ran under both (the whole suite: 58 at the pinned commit)
    expect([...ours.tests.keys()]).toEqual([...runc.tests.keys()]);
    expect(ours.tests.size).toBeGreaterThanOrEqual(50);
    expect(ours.passed.length, `nspawn-oci ${ours.total}; runc ${runc.total}`).toBeGreaterThanOrEqual(runc.passed.length);
    // each failing test has a row of the README's table (| name[, name...] | nspawn-oci | runc | why |)
    const readme = readFileSync(join(REPO, 'packages/oci/README.md'), 'utf8');
    const rows = readme.split('\n').filter((l) => l.startsWith('| ')).map((l) => l.split('|')[1]!.split(',').map((t) => t.trim()));
    const documented = new Set(rows.flat());
    const undocumented = [...new Set([...ours.failed, ...runc.failed])].filter((t) => !documented.has(t));
    expect(undocumented, 'failing tests the README does not explain').toEqual([]);
  }, 90 * 60_000);
});
