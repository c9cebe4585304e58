/**
 * The device policy on a cgroup2-only host, for real, beside runc. This VM is hybrid (v1 controllers, the unified
 * hierarchy at /sys/fs/cgroup/unified), where both runtimes use the v1 devices controller; each call here runs in a
 * mount namespace of its own whose /sys/fs/cgroup is the unified hierarchy alone (`unshare -m`, `umount -R`, `mount
 * -t cgroup2`), which is what a unified-only host looks like to both: runc takes its fs2 driver and enforces
 * linux.resources.devices with a BPF_CGROUP_DEVICE program, nspawn-oci finds no devices controller and attaches its
 * program (src/devicefilter.ts of @nspawn/oci) to the container's cgroup2 directory. The container stays in the
 * caller's v1 devices cgroup, which allows everything (checked), so a denial seen comes from the BPF program.
 *
 * The device: the host's /dev/fuse (c 10:229, no rule of runc's default allows it), bind mounted into the container;
 * the process opens it (no capability needed) with the default rules (denied) and with a rule allowing it.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, REPO } from './helpers/containers.js';

const NSPAWN_OCI = join(REPO, 'apps/cli/bin/nspawn-oci');
const RUNC = '/usr/sbin/runc';
const ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };
const UNIFIED = '/sys/fs/cgroup/unified';
let base: ReturnType<typeof makeTempDir> | undefined;
let bundle = '';
const runtimes = [
  { name: 'runc', argv: [RUNC] },
  { name: 'nspawn-oci', argv: [NSPAWN_OCI] },
];
const cgroupNames: string[] = [];

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error('oci-devices-v2: needs root');
  if (!existsSync(RUNC)) throw new Error(`${RUNC} is missing: install Debian's runc (scripts/setup.sh --test)`);
  if (!existsSync(join(UNIFIED, 'cgroup.procs'))) throw new Error(`${UNIFIED}: no unified hierarchy on this host (the test needs cgroup2 mounted there)`);
  if (!existsSync('/dev/fuse')) throw new Error('/dev/fuse is missing: load the fuse module (modprobe fuse)');
  base = makeTempDir('cr-devbpf-');
  bundle = join(base.dir, 'bundle');
  await execa(join(REPO, 'scripts/make-busybox-tree.sh'), [join(bundle, 'rootfs')], { stdout: 'ignore' });
  await execa(NSPAWN_OCI, ['spec', '-b', bundle], { env: ENV });
  for (const rt of runtimes) mkdirSync(join(base.dir, `root-${rt.name}`));
}, 120_000);

afterAll(() => {
  if (!base) return;
  // whatever cgroup a failed run left (runc and nspawn-oci remove theirs at the end of a run)
  const left = cgroupNames.filter((n) => existsSync(join(UNIFIED, n)));
  for (const rt of runtimes) expect(readdirSync(join(base.dir, `root-${rt.name}`))).toEqual([]);
  expect(base.remove()).toEqual([]);
  expect(left).toEqual([]);
});

function config(id: string, rules: Array<Record<string, unknown>>): void {
  const spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
  spec.process.terminal = false;
  spec.process.args = ['sh', '-c', 'grep -E "^[0-9]+:(devices)?:" /proc/self/cgroup; head -c 0 /dev/null && echo null-ok; (exec 3</tmp/fuse) && echo fuse-opened; true'];
  spec.linux.cgroupsPath = `/${id}`;
  spec.linux.resources = { devices: rules };
  spec.mounts = spec.mounts.filter((m: { destination: string }) => m.destination !== '/tmp/fuse');
  spec.mounts.push({ destination: '/tmp/fuse', type: 'bind', source: '/dev/fuse', options: ['bind'] });
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec, null, 2));
}

/** `RUNTIME ARGS` (default: run ID) in a mount namespace whose /sys/fs/cgroup is the unified hierarchy only. */
function runUnifiedOnly(rt: (typeof runtimes)[number], id: string, args = ['run', '-b', bundle, id], stdio: 'pipe' | number = 'pipe'): Promise<{ code: number | null; out: string }> {
  const setup = 'umount -R /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec "$@"';
  return new Promise((res) => {
    const p = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', setup, 'sh', ...rt.argv, '--root', join(base!.dir, `root-${rt.name}`), ...args], {
      env: ENV,
      stdio: ['ignore', stdio, stdio],
    });
    let out = '';
    p.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), 60_000);
    p.on('close', (code) => {
      clearTimeout(timer);
      res({ code, out });
    });
  });
}

const ownV1Devices = () => /^\d+:devices:(.*)$/m.exec(readFileSync('/proc/self/cgroup', 'utf8'))?.[1];

describe('linux.resources.devices on the unified hierarchy only: a BPF device program, runc and nspawn-oci side by side (root)', () => {
  it('the v1 devices cgroup the containers stay in allows everything', () => {
    const own = ownV1Devices();
    expect(own).toBeDefined();
    expect(readFileSync(join('/sys/fs/cgroup/devices', own!, 'devices.list'), 'utf8').trim()).toBe('a *:* rwm');
  });

  it('runc\'s default rules (deny all, then its allowed devices): /dev/null opens, the bound /dev/fuse is refused', async () => {
    const seen: Record<string, string> = {};
    for (const rt of runtimes) {
      const id = `cr-devbpf-deny-${rt.name}`;
      cgroupNames.push(id);
      config(id, [{ allow: false, access: 'rwm' }]);
      const r = await runUnifiedOnly(rt, id);
      expect(r.code, `${rt.name}: ${r.out}`).toBe(0);
      expect(r.out, rt.name).toContain('null-ok');
      expect(r.out, rt.name).not.toContain('fuse-opened');
      expect(r.out, rt.name).toMatch(/fuse.*(Operation not permitted|Permission denied)/i);
      // the container's cgroup2 directory is the one asked for; its v1 devices cgroup is the caller's
      expect(r.out, rt.name).toContain(`0::/`);
      expect(r.out, rt.name).toMatch(new RegExp(`^\\d+:devices:${ownV1Devices()!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
      seen[rt.name] = r.out.split('\n').filter((l) => /null-ok|fuse/.test(l)).map((l) => l.replace(/^.*?fuse/, 'fuse')).sort().join('\n');
      expect(existsSync(join(UNIFIED, id)), `${rt.name}: cgroup left`).toBe(false);
    }
    expect(seen['nspawn-oci']).toBe(seen.runc);
  });

  it('a rule allowing c 10:229 rw: the same /dev/fuse opens under both', async () => {
    for (const rt of runtimes) {
      const id = `cr-devbpf-allow-${rt.name}`;
      cgroupNames.push(id);
      config(id, [{ allow: false, access: 'rwm' }, { allow: true, type: 'c', major: 10, minor: 229, access: 'rw' }]);
      const r = await runUnifiedOnly(rt, id);
      expect(r.code, `${rt.name}: ${r.out}`).toBe(0);
      expect(r.out, rt.name).toContain('null-ok');
      expect(r.out, rt.name).toContain('fuse-opened');
      expect(existsSync(join(UNIFIED, id)), `${rt.name}: cgroup left`).toBe(false);
    }
  });

  it('a rule that punches a hole in a wildcard rule is refused by both, nothing is left', async () => {
    for (const rt of runtimes) {
      const id = `cr-devbpf-hole-${rt.name}`;
      cgroupNames.push(id);
      config(id, [{ allow: false, access: 'rwm' }, { allow: true, type: 'c', major: 10, access: 'rw' }, { allow: false, type: 'c', major: 10, minor: 229, access: 'w' }]);
      const r = await runUnifiedOnly(rt, id);
      expect(r.code, `${rt.name}: ${r.out}`).not.toBe(0);
      expect(r.out, rt.name).toMatch(/cannot punch hole in existing wildcard rule/);
      expect(r.out, rt.name).not.toContain('null-ok');
      expect(existsSync(join(UNIFIED, id)), `${rt.name}: cgroup left`).toBe(false);
      expect(readdirSync(join(base!.dir, `root-${rt.name}`))).toEqual([]);
    }
  });

  it('create, start (the helper leaves the container to its caller), exec: the program stays attached; delete takes it with the cgroup', async () => {
    const seen: Record<string, string> = {};
    for (const rt of runtimes) {
      const id = `cr-devbpf-life-${rt.name}`;
      cgroupNames.push(id);
      config(id, [{ allow: false, access: 'rwm' }]);
      const spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
      spec.process.args = ['sleep', '1000'];
      writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec, null, 2));
      // the container's stdio is create's: a file, so that nothing waits for it to close
      const log = openSync(join(base!.dir, `${id}.log`), 'a');
      try {
        const c = await runUnifiedOnly(rt, id, ['create', '-b', bundle, id], log);
        expect(c.code, `${rt.name} create: ${readFileSync(join(base!.dir, `${id}.log`), 'utf8')}`).toBe(0);
        const s1 = await runUnifiedOnly(rt, id, ['start', id], log);
        expect(s1.code, `${rt.name} start`).toBe(0);
        const e = await runUnifiedOnly(rt, id, ['exec', id, 'sh', '-c', 'head -c 0 /dev/null && echo null-ok; (exec 3</tmp/fuse) && echo fuse-opened; true']);
        expect(e.code, `${rt.name} exec: ${e.out}`).toBe(0);
        expect(e.out, rt.name).toContain('null-ok');
        expect(e.out, rt.name).not.toContain('fuse-opened');
        expect(e.out, rt.name).toMatch(/fuse.*Operation not permitted/);
        seen[rt.name] = e.out.split('\n').filter((l) => /null-ok|fuse/.test(l)).map((l) => l.replace(/^.*?fuse/, 'fuse')).sort().join('\n');
        // the container's PID 1 is in the cgroup asked for, in the unified hierarchy the host sees
        expect(readFileSync(join(UNIFIED, id, 'cgroup.procs'), 'utf8').trim()).not.toBe('');
      } finally {
        await runUnifiedOnly(rt, id, ['delete', '-f', id]);
        closeSync(log);
      }
      expect(existsSync(join(UNIFIED, id)), `${rt.name}: cgroup left`).toBe(false);
      expect(readdirSync(join(base!.dir, `root-${rt.name}`))).toEqual([]);
    }
    expect(seen['nspawn-oci']).toBe(seen.runc);
  });
});
