/**
 * On a real systemd host (tools/systemd-host: Debian 12 booted under systemd-nspawn, systemd 252 as PID 1, with
 * systemd-container's machines.target), as root: `nspawnctl install-units` installs the units for the checkout's nspawn
 * and reloads systemd; systemd loads nspawn@NAME.service with our ExecStart= and systemd-nspawn@'s directives; `systemctl
 * enable` wires it under machines.target; a drop-in (what `systemctl edit` writes) overrides ExecStart=, and a second
 * install-units leaves that drop-in alone. (Booting it, `systemctl enable --now`, is
 * test/install-units-boot-host.test.ts.)
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootSystemdHost, REPO, type SystemdHost } from '@nspawn/systemd-host';

const NSPAWNCTL = join(REPO, 'apps/cli/bin/nspawnctl');
const NSPAWN = join(REPO, 'apps/cli/bin/nspawn');
let host: SystemdHost;

beforeAll(async () => {
  host = await bootSystemdHost({ name: 'mh-units' });
});
afterAll(async () => {
  await host?.shutdown();
});

const props = async (unit: string, names: string[]) =>
  Object.fromEntries(
    (await host.run(['systemctl', 'show', '-p', names.join(','), unit]))
      .trim()
      .split('\n')
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  ) as Record<string, string>;

describe('install-units on a systemd host', () => {
  it('installs, reloads systemd, and systemd loads nspawn@NAME.service as systemd-nspawn@NAME.service', async () => {
    const inst = await host.exec([NSPAWNCTL, 'install-units'], { env: { NSPAWN_CODE_CACHE: '0' } });
    expect(inst.code, inst.stderr).toBe(0);
    expect(inst.stdout).toBe(
      'Installed /etc/systemd/system/nspawn@.service.\nInstalled /etc/systemd/system/nspawnd.service.\nReloaded systemd (systemctl daemon-reload).\n',
    );
    const ours = await props('nspawn@inner.service', ['LoadState', 'FragmentPath', 'ExecStart', 'Type', 'KillMode', 'Slice', 'Delegate', 'WatchdogUSec', 'TasksMax', 'DevicePolicy', 'WantedBy', 'PartOf', 'Before', 'RequiresMountsFor']);
    const theirs = await props('systemd-nspawn@inner.service', ['Type', 'KillMode', 'Slice', 'Delegate', 'WatchdogUSec', 'TasksMax', 'DevicePolicy', 'WantedBy', 'PartOf', 'Before', 'RequiresMountsFor']);
    expect(ours).toMatchObject({ LoadState: 'loaded', FragmentPath: '/etc/systemd/system/nspawn@.service', ...theirs });
    expect(ours.ExecStart).toContain(`path=${NSPAWN} ; argv[]=${NSPAWN} --quiet --keep-unit --boot --link-journal=try-guest --network-veth -U --settings=override --machine=inner ;`);
    expect(await host.run(['systemctl', 'is-enabled', 'machines.target'])).toBe('enabled\n');
  });

  it('systemctl enable wires it under machines.target; a drop-in overrides ExecStart= and is left alone', async () => {
    await host.run(['systemctl', 'enable', 'nspawn@inner.service']);
    expect(await host.run(['readlink', '/etc/systemd/system/machines.target.wants/nspawn@inner.service'])).toBe('/etc/systemd/system/nspawn@.service\n');
    // what `systemctl edit nspawn@inner` writes
    const dropIn = '[Service]\nExecStart=\nExecStart=/bin/true inner\n';
    await host.run(['sh', '-c', `mkdir -p /etc/systemd/system/nspawn@inner.service.d && printf '%s' '${dropIn}' > /etc/systemd/system/nspawn@inner.service.d/override.conf && systemctl daemon-reload`]);
    expect((await props('nspawn@inner.service', ['ExecStart'])).ExecStart).toContain('argv[]=/bin/true inner ;');
    const again = await host.exec([NSPAWNCTL, 'install-units'], { env: { NSPAWN_CODE_CACHE: '0' } });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).not.toContain('Installed');
    expect(await host.run(['cat', '/etc/systemd/system/nspawn@inner.service.d/override.conf'])).toBe(dropIn);
    await host.run(['systemctl', 'disable', 'nspawn@inner.service']);
  });
});
