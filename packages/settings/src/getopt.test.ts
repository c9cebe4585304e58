// getopt() against glibc's getopt_long(): a small C program (compiled here with cc) parses the same command
// lines with the same option table, in the three orderings, and both must yield the same options, arguments,
// operands and error messages.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GetoptOption, type GetoptOrdering, OptionError, defaultOrdering, getopt, getoptTable } from './getopt.js';

interface TestOption extends GetoptOption {
  val: number;
}
// prefixes shared on purpose: --dir/--directory/--dir-mode, --quiet/--quit, --no-pager/--no-legend
const OPTIONS: TestOption[] = [
  { long: 'help', short: 'h', arg: 'none', val: 'h'.charCodeAt(0) },
  { long: 'directory', short: 'D', arg: 'required', val: 'D'.charCodeAt(0) },
  { long: 'dir-mode', arg: 'required', val: 1000 },
  { long: 'volatile', arg: 'optional', val: 1001 },
  { long: 'quiet', short: 'q', arg: 'none', val: 'q'.charCodeAt(0) },
  { long: 'quit', arg: 'none', val: 1002 },
  { long: 'no-pager', arg: 'none', val: 1003 },
  { long: 'no-legend', arg: 'none', val: 1004 },
  { long: 'output', short: 'o', arg: 'required', val: 'o'.charCodeAt(0) },
  { short: 'a', arg: 'none', val: 'a'.charCodeAt(0) },
  { short: 'z', arg: 'optional', val: 'z'.charCodeAt(0) },
];
const TABLE = getoptTable(OPTIONS);
const OPTSTRING = OPTIONS.filter((o) => o.short).map((o) => o.short + { none: '', required: ':', optional: '::' }[o.arg]).join('');

const HARNESS = `#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static const struct option opts[] = {
${OPTIONS.filter((o) => o.long).map((o) => `  { "${o.long}", ${{ none: 'no_argument', required: 'required_argument', optional: 'optional_argument' }[o.arg]}, NULL, ${o.val} },`).join('\n')}
  { 0, 0, 0, 0 }
};
/* stdin: one command line a line, its words separated by \\x01, the first word "+", "-" or "" (the ordering) */
int main(void) {
  static char line[65536];
  setvbuf(stdout, NULL, _IONBF, 0);
  dup2(1, 2);
  while (fgets(line, sizeof line, stdin)) {
    char *argv[256];
    int argc = 0;
    line[strcspn(line, "\\n")] = 0;
    char *mode = line, *p = strchr(line, 1);
    argv[argc++] = "t";
    if (p) {
      *p++ = 0;
      for (;;) {
        argv[argc++] = p;
        char *q = strchr(p, 1);
        if (!q) break;
        *q = 0;
        p = q + 1;
      }
    }
    argv[argc] = NULL;
    char optstring[256];
    snprintf(optstring, sizeof optstring, "%s${OPTSTRING}", mode);
    optind = 0;
    int c;
    while ((c = getopt_long(argc, argv, optstring, opts, NULL)) != -1) {
      if (c == '?') break;
      if (c == 1) printf("operand %s\\n", optarg);
      else if (optarg) printf("opt %d =%s\\n", c, optarg);
      else printf("opt %d\\n", c);
    }
    if (c != '?')
      for (int i = optind; i < argc; i++) printf("rest %s\\n", argv[i]);
    printf("end\\n");
  }
  return 0;
}
`;

const ORDERINGS: Record<string, GetoptOrdering> = { '+': 'require-order', '': 'permute', '-': 'return-in-order' };

/** What our getopt() gives, in the harness' words. */
function ours(ordering: GetoptOrdering, argv: string[]): string {
  const lines: string[] = [];
  try {
    const it = getopt(argv, TABLE, ordering);
    for (;;) {
      const n = it.next();
      if (n.done) {
        for (const r of n.value) lines.push(`rest ${r}`);
        break;
      }
      const item = n.value;
      if (item.kind === 'operand') lines.push(`operand ${item.value}`);
      else lines.push(item.value === undefined ? `opt ${item.option.val}` : `opt ${item.option.val} =${item.value}`);
    }
  } catch (e) {
    if (!(e instanceof OptionError)) throw e;
    lines.push(`t: ${e.message}`);
  }
  return lines.map((l) => `${l}\n`).join('') + 'end\n';
}

let dir = '';
let harness = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'nspawn-test-getopt-'));
  writeFileSync(join(dir, 'harness.c'), HARNESS);
  harness = join(dir, 'harness');
  const cc = spawnSync('cc', ['-O0', '-o', harness, join(dir, 'harness.c')], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(`cc failed (a C compiler is needed to compare with glibc): ${cc.error?.message ?? cc.stderr}`);
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** glibc's answers for many command lines at once (one harness run). */
function glibc(cases: Array<[string, string[]]>): string[] {
  const input = cases.map(([mode, argv]) => [mode, ...argv].join('\x01') + '\n').join('');
  const env = { ...process.env };
  delete env.POSIXLY_CORRECT;
  const r = spawnSync(harness, [], { input, encoding: 'utf8', env });
  expect(r.status).toBe(0);
  return r.stdout.split(/(?<=^end\n)/m);
}

const WORDS = [
  '-h', '-q', '-qh', '-hq', '-qa', '-aq', '-D', '-Dx', '-Dq', '-o', '-ojson', '-qojson', '-oq', '-z', '-zv', '-az', '-x', '-:', '-;', '-a-',
  '--', '-', '', 'x', 'y', 'shell', '--he', '--help', '--help=1', '--h', '--d', '--di', '--dir', '--dir=/a', '--directory=/a', '--directory',
  '--dir-mode', '--dir-m=1', '--vol', '--volatile', '--volatile=yes', '--volatile=', '--q', '--qu', '--qui', '--quie', '--quiet=1', '--quit=x',
  '--no', '--no-p', '--no-l=1', '--nope', '--nope=1', '--=x', '--output', '--out=json', '---x', '--o', '--a', '--z',
];

describe('getopt() against glibc getopt_long()', () => {
  it('the same results for random command lines in each ordering', () => {
    const cases: Array<[string, string[]]> = fc.sample(
      fc.tuple(fc.constantFrom('+', '', '-'), fc.array(fc.constantFrom(...WORDS), { maxLength: 7 })),
      { numRuns: 3000, seed: 17 },
    );
    const theirs = glibc(cases);
    expect(theirs.length).toBe(cases.length);
    let same = 0;
    for (const [k, [mode, argv]] of cases.entries()) {
      expect({ mode, argv, r: ours(ORDERINGS[mode]!, argv) }).toEqual({ mode, argv, r: theirs[k] });
      same++;
    }
    expect(same).toBe(3000);
  });

  it('the examples from the issue', () => {
    const cases: Array<[string, string[]]> = [
      ['', ['-qa', 'x']],
      ['', ['-ojson', 'x']],
      ['', ['x', '--', '-q']],
      ['', ['--quiet=x']],
      ['', ['--no-pag']],
      ['', ['--no']],
      ['+', ['x', '-q']],
      ['-', ['x', '-q', 'y']],
    ];
    const theirs = glibc(cases);
    expect(cases.map(([m, a]) => ours(ORDERINGS[m]!, a))).toEqual(theirs);
    expect(theirs).toEqual([
      `opt ${'q'.charCodeAt(0)}\nopt ${'a'.charCodeAt(0)}\nrest x\nend\n`,
      `opt ${'o'.charCodeAt(0)} =json\nrest x\nend\n`,
      'rest x\nrest -q\nend\n',
      "t: option '--quiet' doesn't allow an argument\nend\n",
      'opt 1003\nend\n',
      "t: option '--no' is ambiguous; possibilities: '--no-pager' '--no-legend'\nend\n",
      'rest x\nrest -q\nend\n',
      `operand x\nopt ${'q'.charCodeAt(0)}\noperand y\nend\n`,
    ]);
  });
});

describe('getopt()', () => {
  it('names the option and value in its errors', () => {
    const run = (argv: string[]) => [...getopt(argv, TABLE, 'permute')];
    expect(() => run(['--quiet=x'])).toThrow(OptionError);
    let error: unknown;
    try {
      run(['--quie=1']);
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ key: '--quiet', value: '1', message: "option '--quiet' doesn't allow an argument" });
  });
  it('permutes unless $POSIXLY_CORRECT is set', () => {
    expect(defaultOrdering({})).toBe('permute');
    expect(defaultOrdering({ POSIXLY_CORRECT: '' })).toBe('require-order');
  });
});
