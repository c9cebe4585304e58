import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { afterAll, describe, expect, it } from 'vitest';
import { CLONE, MS } from '@nspawn/runtime';
import { defaultSpec, loadSpec, parseMountOptions, parseSignal, resolveRootfs, SpecError, translateSpec, validateSpec, checkId, deviceRules, listenFdsOf } from '../src/index.js';

const scratch = mkdtempSync(join(tmpdir(), 'oci-unit-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('config.json', () => {
  it('reads the default spec back', () => {
    const s = validateSpec(JSON.parse(JSON.stringify(defaultSpec())));
    expect(s.process?.args).toEqual(['sh']);
  });
  it('names the file and the field of a malformed config', () => {
    const f = join(scratch, 'bad.json');
    writeFileSync(f, '{"ociVersion": "1.0.0", "root": ');
    expect(() => loadSpec(f)).toThrow(/bad\.json: not JSON/);
    expect(() => validateSpec({ ociVersion: '1.0.0', root: { path: 'rootfs' }, process: { args: [], cwd: '/', user: { uid: 0, gid: 0 } } }, 'c.json')).toThrow('c.json: process.args: missing or empty');
    expect(() => validateSpec({ ociVersion: '1.0.0', root: { path: 'r' }, linux: { namespaces: [{ type: 'pid' }, { type: 'pid' }] } })).toThrow(/duplicate namespace type "pid"/);
    expect(() => validateSpec({ root: { path: 'r' } })).toThrow(/ociVersion/);
  });
  it('splits mount options into flags, propagation and data', () => {
    const o = parseMountOptions(['nosuid', 'ro', 'rbind', 'rprivate', 'mode=755', 'size=1k']);
    expect(o.flags).toBe(MS.NOSUID | MS.RDONLY | MS.BIND | MS.REC);
    expect(o.propagation).toEqual([MS.PRIVATE | MS.REC]);
    expect(o.data).toEqual(['mode=755', 'size=1k']);
    expect(parseMountOptions(['ro', 'rw']).flags).toBe(0);
  });
  it('refuses a rootfs that is a symlink out of the bundle', () => {
    const bundle = join(scratch, 'bundle');
    mkdirSync(join(scratch, 'outside'), { recursive: true });
    mkdirSync(bundle, { recursive: true });
    symlinkSync('../outside', join(bundle, 'rootfs'));
    expect(() => resolveRootfs(bundle, 'rootfs')).toThrow(/a symlink out of the bundle/);
    mkdirSync(join(bundle, 'inside'));
    expect(resolveRootfs(bundle, 'inside')).toBe(join(bundle, 'inside'));
  });
  it('translates namespaces, the process and the paths into a plan', () => {
    const s = defaultSpec();
    s.process!.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 100, hard: 200 }];
    s.linux!.sysctl = { 'net.ipv4.ip_forward': '1' };
    s.process!.oomScoreAdj = 100;
    const plan = translateSpec(s, { rootfs: scratch, sync: true, console: 'pipe' });
    expect(plan.cloneFlags & CLONE.NEWPID).toBe(CLONE.NEWPID);
    expect(plan.cloneFlags & CLONE.NEWUSER).toBe(0);
    expect(plan.hostname).toBe('nspawn-oci');
    expect(plan.rlimits).toEqual([{ resource: 7, soft: 100n, hard: 200n }]);
    expect(plan.oomScoreAdjust).toBe(100);
    expect(plan.ops.find((o) => o.kind === 'write')).toMatchObject({ target: '/proc/sys/net/ipv4/ip_forward', data: '1' });
    expect(plan.ops.at(-1)).toMatchObject({ kind: 'setattr', target: '/' });
    expect(plan.capabilities?.bounding).toBe((1n << 29n) | (1n << 5n) | (1n << 10n));
    expect(plan.searchPath).toBe(true);
  });
  it('joins namespaces given by path instead of making them', () => {
    const s = defaultSpec();
    s.linux!.namespaces = [{ type: 'mount' }, { type: 'ipc', path: '/proc/1/ns/ipc' }, { type: 'uts', path: '/proc/1/ns/uts' }];
    const plan = translateSpec(s, { rootfs: scratch, sync: true, console: 'pipe' });
    expect(plan.nsJoin).toEqual([{ type: CLONE.NEWIPC, path: '/proc/1/ns/ipc' }, { type: CLONE.NEWUTS, path: '/proc/1/ns/uts' }]);
    expect(plan.cloneFlags & (CLONE.NEWIPC | CLONE.NEWUTS)).toBe(0);
    expect(plan.hostname).toBe('nspawn-oci');
  });
  it('refuses what the engine cannot do with a clear line', () => {
    const s = defaultSpec();
    s.linux!.namespaces = [{ type: 'mount' }, { type: 'user', path: '/proc/1/ns/user' }];
    expect(() => translateSpec(s, { rootfs: scratch, sync: true, console: 'pipe' })).toThrow(SpecError);
    const t = defaultSpec();
    t.linux!.namespaces = [{ type: 'pid' }];
    expect(() => translateSpec(t, { rootfs: scratch, sync: true, console: 'pipe' })).toThrow(/mount namespace is required/);
  });
});

describe('command line values', () => {
  it('parses signals as runc does', () => {
    expect(parseSignal('KILL')).toBe(9);
    expect(parseSignal('SIGTERM')).toBe(15);
    expect(parseSignal('10')).toBe(10);
    expect(parseSignal('RTMIN+3')).toBe(37);
    expect(() => parseSignal('NOPE')).toThrow(/unknown signal/);
  });
  it('checks container ids', () => {
    expect(checkId('abc-1.2_x')).toBe('abc-1.2_x');
    expect(() => checkId('../x')).toThrow(/invalid container id/);
    expect(() => checkId('')).toThrow(/cannot be empty/);
  });
});

describe('the device cgroup policy (v1 devices controller, as runc writes it)', () => {
  it('the config\'s rules in order, then the container\'s nodes, then runc\'s allowed devices', () => {
    const rules = deviceRules(
      [
        { allow: false, access: 'rwm' },
        { allow: true, type: 'c', major: 10, minor: 229, access: 'rw' },
        { allow: false, type: 'b', major: 8 },
      ],
      [{ type: 'c', major: 4, minor: 64 }, { type: 'p' }],
    );
    expect(rules.slice(0, 4)).toEqual([
      ['devices.deny', 'a'],
      ['devices.allow', 'c 10:229 rw'],
      ['devices.deny', 'b 8:* rwm'],
      ['devices.allow', 'c 4:64 rwm'],
    ]);
    expect(rules.slice(4).map((r) => r[1])).toEqual(['c *:* m', 'b *:* m', 'c 1:3 rwm', 'c 1:8 rwm', 'c 1:7 rwm', 'c 5:0 rwm', 'c 1:5 rwm', 'c 1:9 rwm', 'c 136:* rwm', 'c 5:2 rwm', 'c 10:200 rwm']);
    expect(rules.slice(4).every((r) => r[0] === 'devices.allow')).toBe(true);
  });
  it('refuses a rule it cannot write, naming the field', () => {
    expect(() => deviceRules([{ allow: true, type: 'x' }], [])).toThrow('linux.resources.devices: unknown type "x"');
    expect(() => deviceRules([{ allow: true, type: 'c', access: 'rwx' }], [])).toThrow('linux.resources.devices: bad access "rwx"');
  });
});

describe('listenFdsOf (runc: activation.Files)', () => {
  it('counts LISTEN_FDS only when LISTEN_PID is the runtime\'s', () => {
    expect(listenFdsOf({ LISTEN_FDS: '2', LISTEN_PID: '77' }, 77)).toBe(2);
    expect(listenFdsOf({ LISTEN_FDS: '2', LISTEN_PID: '78' }, 77)).toBe(0);
    expect(listenFdsOf({ LISTEN_FDS: 'x', LISTEN_PID: '77' }, 77)).toBe(0);
    expect(listenFdsOf({}, 77)).toBe(0);
  });
});
