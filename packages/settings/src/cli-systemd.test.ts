// parseCommandLine() side by side with systemd-nspawn 252's parse_argv(): the same command lines (with
// `-D /nonexistent` in front, so that a command line systemd accepts ends at "Failed to resolve path") must be
// accepted or refused alike, with the same message: getopt's exactly (after the program name), a value's as
// systemd words it (ours may name the option first: "--private-users=x:y: Failed to parse UID range ...").
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { parseCommandLine } from './cli-args.js';
import { OptionError } from './getopt.js';

const MISSING = '/nonexistent-nspawn-test-dir';

/** systemd-nspawn's verdict: 'accepted' (it went on to the directory), 'help', or its first error line. */
function theirs(argv: string[]): string {
  const r = spawnSync('systemd-nspawn', ['-D', MISSING, ...argv], { encoding: 'utf8' });
  if (r.error) throw new Error(`systemd-nspawn (the reference, apt-get install systemd-container) did not run: ${r.error.message}`);
  const first = r.stderr.split('\n')[0]!;
  if (r.status === 0 && /^systemd-nspawn \[OPTIONS/.test(r.stdout)) return 'help';
  if (r.status === 0 && r.stdout !== '') return `listing ${r.stdout.split('\n')[0]}`;
  if (first === `Failed to resolve path ${MISSING}: No such file or directory` || first === 'Need to be root.') return 'accepted';
  return first;
}

function ours(argv: string[]): string {
  try {
    const cl = parseCommandLine(['-D', MISSING, ...argv], { cwd: '/', environ: {} });
    if (cl.help) return 'help';
    if (cl.listing) return `listing ${cl.listing[0]}`;
    return 'accepted';
  } catch (e) {
    if (e instanceof OptionError) return `systemd-nspawn: ${e.message}`;
    return (e as Error).message;
  }
}

const CASES: string[][] = [
  // unique prefixes, ambiguity, getopt's errors (the message names the whole text, or the option found)
  ['--no-pag'],
  ['--no-p'],
  ['--bind-r', '/srv'],
  ['--private-users-c=x'],
  ['--priv'],
  ['--priv=x'],
  ['--p'],
  ['--h'],
  ['--net'],
  ['--network-v'],
  ['--=x'],
  ['--nope'],
  ['--nope=1'],
  ['--quiet=x'],
  ['--qu=1'],
  ['--directory'],
  ['--reg'],
  ['--reg=no'],
  ['-X'],
  ['-D'],
  ['-qX'],
  ['-:'],
  ['---x'],
  // options end at the first non-option, and at --
  ['-q', '--', '--nope'],
  // what ends the parsing before a later error
  ['-h', '--nope'],
  ['--cons=help', '--nope'],
  ['-b', '-a', '--nope'],
  ['-a', '-b'],
  // values: one grammar with the .nspawn files, systemd's messages
  ['--private-users=65536:0x10'],
  ['--private-users=65535'],
  ['--private-users=x:y'],
  ['--private-users=4294967295:1'],
  ['--private-users=4294967294:2'],
  ['--private-users='],
  ['--link-journal=try-host'],
  ['--link-journal=sometimes'],
  ['--personality=arm'],
  ['--uuid=nope'],
  ['--uuid=00000000000000000000000000000000'],
  ['--system-call-filter=a\\'],
  ['--bind-user=1x'],
  // credentials: the ID, duplicates, the value's escapes (a file PATH is read at the start, not compared here)
  ['--set-credential=a:b\\x41\\n'],
  ['--set-credential=a:'],
  ['--set-credential=a'],
  ['--set-credential='],
  ['--set-credential=:x'],
  ['--set-credential=..:x'],
  ['--set-credential=a/b:x'],
  ['--set-credential=a\\:b:x'],
  ['--set-credential=a:x\\'],
  ['--set-credential=a:\\q'],
  ['--set-credential=a:1', '--set-credential=a:2'],
  ['--set-credential=a:1', '--load-credential=a:/etc/hostname'],
  ['--load-credential=a:/etc/hostname'],
  ['--load-credential=a'],
  ['--load-credential=a:relative'],
  ['--resolv-conf=nope'],
  ['--timezone=nope'],
  ['--volatile=nope'],
  // 252 takes -x with any volatile mode (the snapshot is then the volatile root's tree)
  ['-x', '--volatile=yes'],
  ['--volatile'],
  ['--volatile=overlay'],
  ['--kill-signal=SIGNOPE'],
  ['--rlimit=FOO=1'],
];

describe('the command line side by side with systemd-nspawn 252', () => {
  it.each(CASES.map((c) => [c.join(' '), c] as const))('%s', (_name, argv) => {
    // ours names the option and value in front of some value messages: "--private-users=x:y: ..."
    const named = argv.find((a) => ours(argv).startsWith(`${a}: `));
    expect(named === undefined ? ours(argv) : ours(argv).slice(named.length + 2)).toBe(theirs(argv));
  });
});
