import { describe, expect, it } from 'vitest';
import { encodePlan, parseHelperLine } from './protocol.js';
import { basePlan } from './test/fixtures.js';

const base = basePlan({
  cloneFlags: 0x20000,
  ops: [{ kind: 'mount', source: 'proc', target: '/proc', fstype: 'proc', mountFlags: 14, flags: 1 }],
  rlimits: [{ resource: 7, soft: 1024n, hard: 'infinity' }],
  env: ['A=1'],
});

function tokens(b: Buffer): string[] {
  const s = b.toString('utf8');
  const nl = s.indexOf('\n');
  const body = s.slice(nl + 1);
  expect(Number(s.slice(0, nl))).toBe(Buffer.byteLength(body));
  return body.split('\0').slice(0, -1);
}

describe('encodePlan', () => {
  it('frames NUL-separated tokens with the length', () => {
    const t = tokens(encodePlan(base));
    expect(t.slice(0, 5)).toEqual(['NSPAWN-PLAN-1', 'root', '/r', 'clone', String(0x20000)]);
    expect(t).toContain('op');
    const op = t.indexOf('op');
    expect(t.slice(op, op + 10)).toEqual(['op', 'mount', '1', 'proc', '/proc', 'proc', '14', '', '0', '0']);
    const rl = t.indexOf('rlimit');
    expect(t.slice(rl, rl + 4)).toEqual(['rlimit', '7', '1024', 'infinity']);
    expect(t.slice(-2)).toEqual(['arg', '/bin/true']);
  });
  it('carries the container side of the network: steps in order, then the namespace to join', () => {
    const t = tokens(
      encodePlan({
        ...base,
        net: {
          steps: [
            { kind: 'up', ifname: 'host0' },
            { kind: 'address', ifname: 'host0', family: 4, address: '10.0.0.2', prefixLength: 28 },
            { kind: 'route', ifname: 'host0', family: 4, gateway: '10.0.0.1' },
          ],
          netns: '/run/netns/x',
        },
      }),
    );
    const i = t.indexOf('netup');
    expect(t.slice(i, i + 13)).toEqual(['netup', 'host0', 'netaddr', 'host0', '4', '10.0.0.2', '28', 'netroute', 'host0', '4', '10.0.0.1', 'netns', '/run/netns/x']);
    expect(t.indexOf('netns', i + 13), 'one netns token').toBe(-1);
  });
  it('empty group list says so explicitly', () => {
    expect(tokens(encodePlan({ ...base, groups: [] }))).toContain('nogroups');
  });
  it('multi-byte UTF-8 counts bytes', () => {
    expect(() => tokens(encodePlan({ ...base, env: ['X=ünïcødé'] }))).not.toThrow();
  });
  it('carries the device program: optional flag, cgroup directory, instructions in hex', () => {
    const program = new Uint8Array([0xb7, 0, 0, 0, 1, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]);
    const t = tokens(encodePlan({ ...base, deviceProgram: { cgroup: '/sys/fs/cgroup/unified/machine.slice/machine-x.scope', program } }));
    const i = t.indexOf('devbpf');
    expect(t.slice(i, i + 4)).toEqual(['devbpf', '0', '/sys/fs/cgroup/unified/machine.slice/machine-x.scope', 'b7000000010000009500000000000000']);
    const o = tokens(encodePlan({ ...base, deviceProgram: { cgroup: '/c', program, optional: true } }));
    expect(o.slice(o.indexOf('devbpf'), o.indexOf('devbpf') + 3)).toEqual(['devbpf', '1', '/c']);
  });
  it('carries the cgroup placement: v1 tasks files, then the unified scope', () => {
    const t = tokens(
      encodePlan({
        ...base,
        cgroup: { v1: [{ scope: '/c/pids/m.scope/tasks', home: '/c/pids/tasks' }], unified: { scope: '/c/unified/m.scope', home: '/c/unified/cgroup.procs' } },
      }),
    );
    const i = t.indexOf('cgv1');
    expect(t.slice(i, i + 6)).toEqual(['cgv1', '/c/pids/m.scope/tasks', '/c/pids/tasks', 'cgv2', '/c/unified/m.scope', '/c/unified/cgroup.procs']);
  });
  it("carries init's arguments for the fallback candidates and the sd_notify settings", () => {
    const t = tokens(encodePlan({ ...base, argv: [], fallback: [['/sbin/init', '/sbin/init']], fallbackArgs: ['quiet'], notify: { notifyReady: true, restartExits: false } }));
    const f = t.indexOf('fallback');
    expect(t.slice(f, f + 5)).toEqual(['fallback', '/sbin/init', '/sbin/init', 'fallbackarg', 'quiet']);
    const n = t.indexOf('sdnotify');
    expect(t.slice(n, n + 3)).toEqual(['sdnotify', '1', '0']);
    expect(tokens(encodePlan(base))).not.toContain('sdnotify');
  });
  it("carries -x's removal after a hand-over: subvolumes, then mount points in order, then trees", () => {
    const t = tokens(
      encodePlan({
        ...base,
        inheritedLocks: [{ fd: 21, path: '/v/.#machine.a0123456789abcdef.lck', exclusive: true }],
        removeSubvolumes: ['/b/.#machine.s'],
        removeMounts: ['/v/.#machine.a0123456789abcdef/root', '/v/.#machine.a0123456789abcdef'],
        removeTrees: ['/v/.#machine.a0123456789abcdef'],
      }),
    );
    const l = t.indexOf('lockfd');
    expect(t.slice(l, l + 4)).toEqual(['lockfd', '21', '/v/.#machine.a0123456789abcdef.lck', '1']);
    const i = t.indexOf('hosubvol');
    expect(t.slice(i, i + 8)).toEqual([
      'hosubvol',
      '/b/.#machine.s',
      'houmount',
      '/v/.#machine.a0123456789abcdef/root',
      'houmount',
      '/v/.#machine.a0123456789abcdef',
      'hotree',
      '/v/.#machine.a0123456789abcdef',
    ]);
    const plain = tokens(encodePlan(base));
    for (const k of ['hosubvol', 'houmount', 'hotree']) expect(plain).not.toContain(k);
  });
  it('refuses NUL bytes in values', () => {
    expect(() => encodePlan({ ...base, argv: ['a\0b'] })).toThrow(/NUL/);
  });
});

describe('parseHelperLine', () => {
  it('parses every event', () => {
    expect(parseHelperLine('pid 42')).toEqual({ type: 'pid', pid: 42 });
    expect(parseHelperLine('ready')).toEqual({ type: 'ready' });
    expect(parseHelperLine('error mount(x): EPERM')).toEqual({ type: 'error', message: 'mount(x): EPERM' });
    expect(parseHelperLine('warning bind failed')).toEqual({ type: 'warning', message: 'bind failed' });
    expect(parseHelperLine('escape poweroff')).toEqual({ type: 'escape', action: 'poweroff' });
    expect(parseHelperLine('notify READY=1')).toEqual({ type: 'notify', message: 'READY=1' });
    expect(parseHelperLine('notify STATUS=Startup finished.')).toEqual({ type: 'notify', message: 'STATUS=Startup finished.' });
    expect(parseHelperLine('exit 3')).toEqual({ type: 'exit', code: 3 });
    expect(parseHelperLine('signal 9')).toEqual({ type: 'signal', signal: 9 });
    expect(parseHelperLine('escape nonsense')).toBeUndefined();
    expect(parseHelperLine('bogus')).toBeUndefined();
  });
});
