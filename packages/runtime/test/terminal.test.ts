/**
 * isTerminal() (host.ts) against the kernel's answer, tty.isatty(), on the kinds of descriptor nspawn meets: a
 * pseudo-terminal (made by script(1)), /dev/null, a pipe, a regular file, /dev/tty's absence.
 */
import { execaSync } from 'execa';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const probe = fileURLToPath(new URL('./fixtures/terminal-probe.mjs', import.meta.url));
const hostJs = fileURLToPath(new URL('../dist/host.js', import.meta.url));

/** Runs the probe with SHELL-REDIRECTS applied to its fds 0 and 1; returns "isTerminal isatty" per fd. */
function answers(command: string): string {
  return execaSync('/bin/sh', ['-c', command.replace('PROBE', `node ${probe} ${hostJs}`)], { stdio: ['ignore', 'pipe', 'inherit'], stripFinalNewline: false }).stdout;
}

describe('isTerminal', () => {
  it('agrees with isatty() on a pseudo-terminal', () => {
    // script(1) runs the probe with a new pty as its stdin and stdout
    const out = answers(`script -qec 'PROBE' /dev/null`);
    expect(out).toContain('0:true:true');
    expect(out).toContain('1:true:true');
  });
  it('agrees with isatty() on /dev/null, a pipe and a file', () => {
    const out = answers('PROBE </dev/null | cat');
    expect(out).toContain('0:false:false');
    expect(out).toContain('1:false:false');
    const file = answers('PROBE </proc/self/status');
    expect(file).toContain('0:false:false');
  });
  it('agrees with isatty() on a character device whose major is looked up in /proc/devices (misc: /dev/net/tun)', () => {
    if (existsSync('/dev/net/tun')) {
      expect(answers('PROBE </dev/net/tun')).toContain('0:false:false');
      return;
    }
    // no /dev/net/tun here (a container's /dev): a node of our own for a misc driver the kernel has, opened the same
    // way (opening tun, loop-control or fuse does nothing until it is used)
    const misc = /^\s*(\d+) (tun|loop-control|fuse)$/m.exec(readFileSync('/proc/misc', 'utf8'));
    expect(misc, 'no tun, loop-control or fuse misc device in /proc/misc to test with').not.toBeNull();
    const dir = mkdtempSync('/var/tmp/nspawn-test-tty-');
    try {
      execaSync('mknod', [join(dir, misc![2]!), 'c', '10', misc![1]!]);
      expect(answers(`PROBE <${join(dir, misc![2]!)}`)).toContain('0:false:false');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
