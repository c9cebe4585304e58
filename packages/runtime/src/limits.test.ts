import { describe, expect, it } from 'vitest';
import type { CustomMount } from '@nspawn/settings';
import { execArgsLimit, execSizeError, kernelLimitError, type MountLimitFacts, mountLimitError } from './limits.js';
import { buildEnvironment, buildRlimits } from './plan.js';
import { bareHost, baseConfig } from './test/fixtures.js';

const MiB = 1024 * 1024;

describe('execve() size (bprm_stack_limits())', () => {
  it('a quarter of the stack limit, at most 6 MiB, at least 32 pages', () => {
    expect(execArgsLimit(8n * BigInt(MiB))).toBe(2 * MiB);
    expect(execArgsLimit('infinity')).toBe(6 * MiB);
    expect(execArgsLimit(64n * BigInt(MiB))).toBe(6 * MiB);
    expect(execArgsLimit(1n)).toBe(128 * 1024);
  });
  it('fits up to the byte: strings with their NULs, the path, a pointer each and one more', () => {
    // one argument of A bytes, no environment: A+1 + 4096 + 2*8 bytes
    const fits = 128 * 1024 - 4096 - 16 - 1;
    expect(execSizeError(['x'.repeat(fits)], [], 1n)).toBeUndefined();
    expect(execSizeError(['x'.repeat(fits), ''], [], 1n)).toMatch(/^The container's command line and environment \(2 arguments, 0 variables: 131081 bytes with their pointers\) are more than the 131072 bytes execve\(\) takes with a stack limit of 1: Argument list too long\.$/);
  });
  it('counts bytes, not characters', () => {
    const fits = 128 * 1024 - 4096 - 16 - 1;
    expect(execSizeError(['é'.repeat(fits / 2)], [], 1n)).toBeUndefined();
    expect(execSizeError(['é'.repeat(fits / 2 + 1)], [], 1n)).toMatch(/Argument list too long/);
  });
  it('one string longer than MAX_ARG_STRLEN is refused whatever the stack', () => {
    expect(execSizeError(['a', 'x'.repeat(131072)], [], 'infinity')).toBe(
      "Argument 2 of the container's command line is 131072 bytes long, more than execve() takes in one (131071): Argument list too long.",
    );
    expect(execSizeError(['a'], [`HUGE=${'x'.repeat(131072)}`], 'infinity')).toMatch(/^A variable of the container's environment \(HUGE\) is 131077 bytes long/);
  });
  it('100,000 arguments fit with the default 8 MiB stack, not with 1 MiB', () => {
    const args = ['/bin/sh', '-c', 'x', ...Array.from({ length: 100_000 }, (_, i) => String(i))];
    expect(execSizeError(args, ['PATH=/bin'], 8388608n)).toBeUndefined();
    expect(execSizeError(args, ['PATH=/bin'], 1048576n)).toMatch(/100003 arguments, 1 variables/);
  });
  it('a start: the planned environment and the planned stack limit (--rlimit=STACK=), -b\'s init and its arguments', () => {
    const host = bareHost();
    const check = (over: Parameters<typeof baseConfig>[0]) => {
      const cfg = baseConfig(over);
      return kernelLimitError(cfg, buildEnvironment(cfg, host), buildRlimits(cfg, host), noFacts);
    };
    const many = Array.from({ length: 40_000 }, () => 'argument');
    expect(check({ parameters: ['/bin/true', ...many] })).toBeUndefined();
    expect(check({ parameters: ['/bin/true', ...many], rlimits: { STACK: { soft: 1048576n, hard: 1048576n } } })).toMatch(/stack limit of 1048576/);
    expect(check({ startMode: 'boot', parameters: many, rlimits: { STACK: { soft: 1048576n, hard: 1048576n } } })).toMatch(/40001 arguments/);
    expect(check({ environment: [`BIG=${'x'.repeat(200_000)}`] })).toMatch(/environment \(BIG\)/);
  });
});

/** facts that must not be asked (a start with few mounts reads nothing) */
const noFacts: MountLimitFacts = {
  mountMax: () => {
    throw new Error('read');
  },
  mountPoints: () => {
    throw new Error('read');
  },
  openFilesHard: () => {
    throw new Error('read');
  },
};
const binds = (n: number, source = '/srv/src'): CustomMount[] =>
  Array.from({ length: n }, (_, i) => ({ type: 'bind', source, destination: `/b/${i}`, readOnly: false, recursive: true }));

describe('mounts', () => {
  const facts = (max: number, points: string[], hard?: number): MountLimitFacts => ({ mountMax: () => max, mountPoints: () => points, openFilesHard: () => hard });
  it('a few read nothing', () => {
    expect(mountLimitError({ directory: '/srv/tree', customMounts: binds(63) }, noFacts)).toBeUndefined();
  });
  it('more than mount-max, counting the host\'s and what is mounted under each source and the tree', () => {
    const host = ['/', '/proc', '/srv/src', '/srv/src/a', '/srv/tree/x'];
    // 5 host + 1 under the tree + 96 planned + 5000 binds * (1 + 2 under /srv/src)
    expect(mountLimitError({ directory: '/srv/tree', customMounts: binds(5000) }, facts(15102, host))).toBeUndefined();
    expect(mountLimitError({ directory: '/srv/tree', customMounts: binds(5000) }, facts(15101, host))).toBe(
      "The container's 5000 mounts and the 5 of the host are more than the kernel allows in a mount namespace (/proc/sys/fs/mount-max: 15101).",
    );
    expect(mountLimitError({ directory: '/srv/tree', customMounts: binds(5000, '/elsewhere') }, facts(100000, host))).toBeUndefined();
  });
  it('more bind sources than open files', () => {
    expect(mountLimitError({ directory: '/t', customMounts: binds(5000) }, facts(100000, ['/'], 4096))).toBe(
      "The container's 5000 bind mounts need 5064 open files, more than this process's hard limit of 4096 (ulimit -Hn).",
    );
    expect(mountLimitError({ directory: '/t', customMounts: binds(5000) }, facts(100000, ['/'], 5064))).toBeUndefined();
  });
});
