/**
 * The seccomp programs the bundle carries (scripts/bundle.mjs) are the ones the runtime computes for the same
 * options (the bundle is not stale), and real starts of the bundled nspawn install them: a copy of the CLI whose
 * table has every program marked (a prefix that denies uname(2) with EPERM) must run a plain start and a
 * --private-network start under the marked program, and a start whose options are not in the table under a
 * computed one. (busybox's uname prints an empty name when uname(2) fails. That the programs give systemd-nspawn
 * 252's decisions is packages/runtime/test/seccomp.test.ts.)
 */
import { execa } from 'execa';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nspawnSeccompFilter, type PrecomputedSeccomp } from '@nspawn/runtime';
import { makeBusyboxTree } from './helpers/busybox-tree.js';

const CLI = fileURLToPath(new URL('..', import.meta.url));
const table = JSON.parse(readFileSync(join(CLI, 'dist/precomputed-seccomp.json'), 'utf8')) as PrecomputedSeccomp;

/**
 * Five instructions put before a program (little-endian struct sock_filter: code u16, jt u8, jf u8, k u32):
 * on x86-64, uname (63) gets EPERM; everything else goes on to the program unchanged (its jumps are relative).
 */
const MARK = [
  '2000000004000000', // ld [4]              (arch)
  '150000033e0000c0', // jeq #0xc000003e, jt 0, jf 3
  '2000000000000000', // ld [0]              (nr)
  '150000013f000000', // jeq #63, jt 0, jf 1
  '0600000001000500', // ret #SECCOMP_RET_ERRNO|EPERM
].join('');

describe('precomputed seccomp programs', () => {
  it('equal the programs the runtime computes now for the same options (the bundle is not stale)', () => {
    expect(Object.keys(table).length).toBeGreaterThanOrEqual(6);
    for (const [key, entry] of Object.entries(table)) {
      const [retain, allow, deny, suppressSync] = JSON.parse(key) as [string, string[], string[], boolean];
      const f = nspawnSeccompFilter({ retainedCapabilities: BigInt(`0x${retain}`), allow, deny, suppressSync });
      expect(entry.hex).toBe(Buffer.from(f.bytes).toString('hex'));
      expect(entry.warnings).toEqual(f.warnings);
    }
  });
  it('are in the bundle, each of them', () => {
    const bundle = readFileSync(join(CLI, 'dist/nspawn.cjs'), 'utf8');
    for (const entry of Object.values(table)) expect(bundle).toContain(entry.hex);
  });
});

describe('a start of the bundled nspawn', () => {
  let work = '';
  let tree = '';
  let marked = '';
  beforeAll(() => {
    expect(process.getuid?.(), 'needs root: it starts containers').toBe(0);
    work = mkdtempSync('/tmp/nspawn-test-precomp-');
    tree = makeBusyboxTree(join(work, 'tree'), { probe: false });
    // a copy of the CLI (bin/ and dist/) whose bundle has every table program marked
    marked = join(work, 'cli');
    for (const d of ['bin', 'dist', 'package.json']) cpSync(join(CLI, d), join(marked, d), { recursive: true });
    let bundle = readFileSync(join(marked, 'dist/nspawn.cjs'), 'utf8');
    for (const entry of Object.values(table)) {
      expect(bundle).toContain(entry.hex);
      bundle = bundle.split(entry.hex).join(`${MARK}${entry.hex}`);
    }
    writeFileSync(join(marked, 'dist/nspawn.cjs'), bundle);
  }, 120_000);
  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /** uname's exit status and output in a container started by CLI's nspawn with ARGS */
  async function uname(cli: string, args: string[]) {
    const r = await execa(process.execPath, [join(cli, 'bin/nspawn'), '-q', '-D', tree, '-M', 'dc-precomp', ...args, '/bin/uname', '-s'], {
      timeout: 30_000,
      killSignal: 'SIGKILL',
      env: { NSPAWN_CODE_CACHE: '0' },
      reject: false,
      stripFinalNewline: false,
    });
    return { status: r.exitCode ?? null, out: `${r.stdout}${r.stderr}`.trim() };
  }

  it('the unmarked bundle runs uname (the control)', async () => {
    expect(await uname(CLI, [])).toEqual({ status: 0, out: 'Linux' });
  });
  it.each([[[]], [['--private-network']]])('takes the program from the table: nspawn %j', async (args) => {
    expect(await uname(marked, args)).toEqual({ status: 0, out: '' });
  });
  it('computes the program of options the table does not have (--system-call-filter=uname: no mark)', async () => {
    expect(await uname(marked, ['--system-call-filter=uname'])).toEqual({ status: 0, out: 'Linux' });
  });
});
