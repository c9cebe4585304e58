// nspawnctl's command line: parsed as machinectl 252 parses its own (getopt_long() in return-in-order until the
// verb, then permutation; shell's machine name ends the options), and side by side with the real machinectl for
// what it says before it needs a bus (parse errors); a command line it accepts must get past our parsing too.
import { execaSync } from 'execa';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { OptionError } from '@nspawn/settings';
import { describe, expect, it } from 'vitest';
import { parseCtlArgs } from '../src/ctl-args.js';

const REPO = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const NSPAWNCTL = join(REPO, 'apps/cli/bin/nspawnctl');
const NO_DAEMON = '/nonexistent-nspawn-test-run';

describe('parseCtlArgs()', () => {
  const parse = (...argv: string[]) => parseCtlArgs(argv, {});
  it('groups short options and takes their values attached or apart', () => {
    expect(parse('-qa', 'list')).toMatchObject({ verb: 'list', args: [], opts: { quiet: true, all: true } });
    expect(parse('-ojson', 'list').opts.output).toBe('json');
    expect(parse('-o', 'json-pretty', 'list').opts.output).toBe('json-pretty');
    expect(parse('-qn5', 'status', 'x').opts).toMatchObject({ quiet: true, lines: 5 });
    // machinectl 252 refuses this one ("option requires an argument -- 'o'", see below): we do not
    expect(parse('-ao', 'json', 'list')).toMatchObject({ verb: 'list', opts: { all: true, output: 'json' } });
  });
  it('takes options after the verb and its arguments, until --', () => {
    expect(parse('status', 'a', '-n', '3', 'b', '--no-legend')).toMatchObject({ verb: 'status', args: ['a', 'b'], opts: { lines: 3, legend: false } });
    expect(parse('kill', 'a', '--', '-s', 'x')).toMatchObject({ verb: 'kill', args: ['a', '-s', 'x'] });
    expect(parse('--', 'list', '-q')).toMatchObject({ verb: 'list', args: ['-q'], opts: { quiet: false } });
    expect(parse('-E', 'shell', 'list')).toMatchObject({ verb: 'list', opts: { setenv: ['shell'] } });
  });
  it("stops at shell's machine name: the rest is the command, options and all", () => {
    expect(parse('shell', '-q', '--uid=al', 'box', 'ls', '-l', '--', '-q')).toMatchObject({
      verb: 'shell',
      args: ['box', 'ls', '-l', '--', '-q'],
      opts: { quiet: true, uid: 'al' },
    });
    expect(parse('-E', 'A=1', 'shell', 'box', '-E', 'B=2')).toMatchObject({ args: ['box', '-E', 'B=2'], opts: { setenv: ['A=1'] } });
    expect(parse('shell', '--', 'box', '-q')).toMatchObject({ verb: 'shell', args: ['box', '-q'], opts: { quiet: false } });
  });
  it('with $POSIXLY_CORRECT the options end at the first argument after the verb', () => {
    expect(parseCtlArgs(['status', 'box', '-q'], { POSIXLY_CORRECT: '1' })).toMatchObject({ args: ['box', '-q'], opts: { quiet: false } });
    expect(parseCtlArgs(['status', '-q', 'box'], { POSIXLY_CORRECT: '1' })).toMatchObject({ args: ['box'], opts: { quiet: true } });
  });
  it("takes unique prefixes, refuses ambiguous ones, and getopt's other errors", () => {
    expect(parse('--no-l', '--out=json', '--kill=leader', 'list').opts).toMatchObject({ legend: false, output: 'json', killWhom: 'leader' });
    expect(() => parse('--no')).toThrow("option '--no' is ambiguous; possibilities: '--no-pager' '--no-legend' '--no-ask-password'");
    expect(() => parse('--quiet=x')).toThrow(OptionError);
    expect(() => parse('--quiet=x')).toThrow("option '--quiet' doesn't allow an argument");
    expect(() => parse('list', '-o')).toThrow("option requires an argument -- 'o'");
    expect(() => parse('list', '--bogus')).toThrow("unrecognized option '--bogus'");
  });
  it('--help and --version end the parsing', () => {
    expect(parse('-h', '--bogus').help).toBe(true);
    expect(parse('list', '--vers', '--bogus').version).toBe(true);
  });
  it("values are checked where they are given, with nspawnctl's messages", () => {
    expect(() => parse('-o', 'yaml')).toThrow("Unknown output 'yaml'.");
    expect(() => parse('kill', 'x', '-s', 'NOPE')).toThrow('Failed to parse signal string NOPE.');
    expect(parse('kill', 'x', '-sRTMIN+4').opts.signal).toBe(38);
  });
});

/** How a tool ends: its first line of error output, or 'parsed' when it got past its command line. */
function verdict(tool: 'machinectl' | 'nspawnctl', argv: string[]): { status: number | null; says: string } {
  const r = execaSync(tool === 'machinectl' ? 'machinectl' : NSPAWNCTL, argv, {
    env: { NSPAWND_RUNTIME_DIR: NO_DAEMON, SYSTEMD_PAGER: 'cat' },
    reject: false,
    stripFinalNewline: false,
  });
  if (r.failed && r.exitCode === undefined && r.signal === undefined)
    throw new Error(`${tool} did not run (machinectl: apt-get install systemd-container): ${r.shortMessage}`);
  const first = r.stderr.split('\n')[0]!;
  const parsed =
    tool === 'machinectl'
      ? /^System has not been booted with systemd|^Failed to connect to bus/.test(first)
      : first.startsWith(`nspawnd is not running (no socket at ${NO_DAEMON}/`);
  return { status: r.exitCode ?? null, says: parsed ? 'parsed' : first.replace(/^nspawnctl: /, 'machinectl: ') };
}

describe('side by side with machinectl 252', () => {
  const cases: string[][] = [
    ['--x'],
    ['--x=1'],
    ['--no'],
    ['--qu=x'],
    ['--quiet=x'],
    ['--help=x'],
    ['--ver'],
    ['--s'],
    ['--kill'],
    ['--kill-whom'],
    ['-o'],
    ['-X'],
    ['-qX'],
    ['-:'],
    ['list', '--x'],
    ['list', '-n'],
    ['status', 'a', '--bogus'],
    ['-qa', 'list'],
    ['-ojson', 'list'],
    ['--no-pag', 'list'],
    ['--no-l', '--out=json', 'list'],
    ['list', '--', '-q'],
    ['shell', 'box', '--x'],
    ['shell', '-q', 'box', '-X', '--x'],
    ['--format=foo', 'list-transfers'],
    ['--format=xz', 'export-raw', 'a'],
    ['--format', 'bzip2', 'list-transfers'],
    ['--verify=foo', 'pull-raw', 'http://127.0.0.1/x.raw'],
    ['--verify=signature', 'list-transfers'],
    ['--verify=checksum', 'list-transfers'],
  ];
  it.each(cases.map((c) => [c.join(' '), c] as const))('%s', (_name, argv) => {
    const theirs = verdict('machinectl', argv);
    expect(verdict('nspawnctl', argv)).toEqual(theirs);
  });
  it('differs where machinectl slips: -ao json list (glibc re-initialised under it)', () => {
    expect(verdict('machinectl', ['-ao', 'json', 'list'])).toEqual({ status: 1, says: "machinectl: option requires an argument -- 'o'" });
    expect(verdict('nspawnctl', ['-ao', 'json', 'list'])).toEqual({ status: 1, says: 'parsed' });
  });
});

describe('the shell completions', () => {
  it("offer nspawnctl's options as its parser has them", async () => {
    const { NSPAWNCTL_OPTIONS } = (await import('../scripts/completions.mjs')) as unknown as { NSPAWNCTL_OPTIONS: Array<[string, string, string | undefined, string]> };
    const { CTL_OPTIONS } = await import('../src/ctl-args.js');
    expect(NSPAWNCTL_OPTIONS.map(([long, short, values]) => ({ long, short: short || undefined, arg: values === '' ? 'none' : 'required' }))).toEqual(
      CTL_OPTIONS.map((o) => ({ long: o.long, short: o.short, arg: o.arg })),
    );
  });
});
