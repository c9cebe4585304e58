/**
 * On a real systemd host (tools/systemd-host: Debian 12 booted under systemd-nspawn, systemd 252 as PID 1), as root:
 * `nspawnctl install-units` installs the units for the checkout's nspawn, and `systemctl enable --now
 * nspawn@inner` boots the busybox tree /var/lib/machines/inner under it: the unit active, its main process our
 * nspawn, the container's init in payload/ of the unit's cgroup (nspawn in supervisor/), a private user namespace and
 * network, machined told of the unit; a poweroff ends the unit and the registration.
 *
 * busybox's init does not answer SIGRTMIN+3 (the kill signal of -b, which `systemctl stop` has nspawn send: it then
 * waits TimeoutStopSec=, as systemd-nspawn 252 would): the container is powered off the busybox way (SIGUSR2 to its
 * init, through machinectl kill), which ends the unit as a clean shutdown.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootSystemdHost, REPO, type SystemdHost } from '@nspawn/systemd-host';

const NSPAWNCTL = join(REPO, 'apps/cli/bin/nspawnctl');
let host: SystemdHost;

beforeAll(async () => {
  host = await bootSystemdHost({ name: 'mh-units' });
});
afterAll(async () => {
  if (!host) return;
  await host.exec(['systemctl', 'stop', 'nspawn@inner.service']);
  await host.shutdown();
});

const props = async (unit: string, names: string[]) =>
  Object.fromEntries(
    (await host.run(['systemctl', 'show', '-p', names.join(','), unit]))
      .trim()
      .split('\n')
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  ) as Record<string, string>;

describe('nspawn@.service on a systemd host', () => {
  it('install-units, then systemctl enable --now nspawn@inner boots the container', { timeout: 180_000 }, async () => {
    const inst = await host.exec([NSPAWNCTL, 'install-units'], { env: { NSPAWN_CODE_CACHE: '0' } });
    expect(inst.code, inst.stderr).toBe(0);
    expect(inst.stdout).toContain('Installed /etc/systemd/system/nspawn@.service.');
    expect(inst.stdout).toContain('Reloaded systemd (systemctl daemon-reload).');
    // the host has systemd's machines.target: none of ours
    expect(inst.stdout).not.toContain('Installed /etc/systemd/system/machines.target');
    const en = await host.exec(['systemctl', 'enable', '--now', 'nspawn@inner.service'], { timeoutMs: 90_000 });
    const journal = async () => (await host.exec(['journalctl', '-u', 'nspawn@inner.service', '--no-pager', '-n', '40'])).stdout;
    expect(en.code, `${en.stderr}\n${await journal()}`).toBe(0);
    expect(await host.run(['readlink', '/etc/systemd/system/machines.target.wants/nspawn@inner.service'])).toBe('/etc/systemd/system/nspawn@.service\n');
    let p: Record<string, string> = {};
    for (let i = 0; i < 100; i++) {
      p = await props('nspawn@inner.service', ['ActiveState', 'SubState', 'MainPID', 'ControlGroup', 'Result', 'ExecMainStatus']);
      if (p.ActiveState !== 'activating') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(p, await journal()).toMatchObject({ ActiveState: 'active', SubState: 'running', ControlGroup: '/machine.slice/nspawn@inner.service' });
    // the container's processes in the unit's cgroup: its init (busybox) in a user namespace of its own
    const procs = (await host.run(['systemd-cgls', '--no-pager', '-u', 'nspawn@inner.service'])).trim();
    expect(procs, await journal()).toMatch(/init/);
    const pids = (await host.run(['sh', '-c', 'cat /sys/fs/cgroup/machine.slice/nspawn@inner.service/payload/cgroup.procs 2>/dev/null || systemd-cgls --no-pager -u nspawn@inner.service']))
      .split('\n')
      .map((l) => /(\d+)/.exec(l)?.[1])
      .filter((x): x is string => !!x && x !== p.MainPID);
    expect(pids.length, procs).toBeGreaterThan(0);
    const maps = await Promise.all(pids.map(async (pid) => (await host.exec(['cat', `/proc/${pid}/uid_map`])).stdout.trim()));
    expect(maps.some((m) => /^0\s+[1-9]\d*\s+65536$/.test(m)), `${maps.join(' | ')}\n${procs}`).toBe(true);
    // --network-veth: ve-inner on the host side
    expect(await host.run(['ip', '-o', 'link', 'show'])).toMatch(/ve-inner/);
    // still running after a few seconds (not ended by a start timeout or a missing READY=1)
    await new Promise((r) => setTimeout(r, 3000));
    expect((await props('nspawn@inner.service', ['ActiveState'])).ActiveState).toBe('active');
    // machined knows it as the unit's machine (RegisterMachineWithNetwork under --keep-unit)
    expect(await host.run(['machinectl', 'show', '-p', 'Unit', '--value', 'inner'])).toBe('nspawn@inner.service\n');
    await host.run(['machinectl', 'kill', '--kill-whom=leader', '--signal=SIGUSR2', 'inner']);
    let state = '';
    for (let i = 0; i < 200 && state !== 'inactive'; i++) {
      state = (await props('nspawn@inner.service', ['ActiveState'])).ActiveState!;
      if (state !== 'inactive') await new Promise((r) => setTimeout(r, 100));
    }
    expect(state, await journal()).toBe('inactive');
    expect(await host.run(['machinectl', 'list', '--no-pager', '--no-legend'])).toBe('');
    expect(await host.run(['ip', '-o', 'link', 'show'])).not.toMatch(/ve-inner/);
  });
});
