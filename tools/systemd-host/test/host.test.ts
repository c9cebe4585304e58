/**
 * The fixture itself, as root: the systemd host boots, and the reference systemd-nspawn 252 inside it registers with
 * machined, so that machinectl, systemd-cgls -M and nss-mymachines see it (the behaviour our nspawn must match there).
 * Everything is cleaned up: the copy, the cgroups, the processes.
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootSystemdHost, INNER_TREE, type SystemdHost } from '../src/index.js';

let host: SystemdHost;
const NAME = 'mh-fixture';

beforeAll(async () => {
  host = await bootSystemdHost({ name: NAME, log: (l) => console.log(l) });
});
afterAll(async () => {
  await host?.shutdown();
});

describe('the systemd host', () => {
  it('runs systemd as PID 1 with machined on the system bus', async () => {
    expect(await host.run(['cat', '/proc/1/comm'])).toBe('systemd\n');
    expect((await host.exec(['test', '-d', '/run/systemd/system'])).code).toBe(0);
    const names = await host.run(['busctl', '--system', 'list', '--no-pager', '--no-legend']);
    expect(names).toMatch(/^org\.freedesktop\.machine1\s/m);
    expect(await host.run(['machinectl', 'list', '--no-pager', '--no-legend'])).toBe('');
    expect(await host.run(['grep', '^hosts:', '/etc/nsswitch.conf'])).toMatch(/files mymachines dns myhostname/);
    expect(await host.run(['node', '-e', 'console.log(process.versions.node.split(".")[0] >= 24)'])).toBe('true\n');
    expect((await host.exec(['test', '-x', `${INNER_TREE}/bin/busybox`])).code).toBe(0);
  });

  it('processes started with scope: true are in a transient scope of its systemd', async () => {
    const plain = await host.run(['cat', '/proc/self/cgroup']);
    const scoped = await host.run(['cat', '/proc/self/cgroup'], { scope: true });
    expect(plain).toMatch(/^0::\/\.\.\//m); // outside the host's tree: nsenter does not move the process
    expect(scoped).toMatch(/^0::\/system\.slice\/run-.*\.scope$/m);
  });

  it("systemd-nspawn 252 inside registers with machined: machinectl, systemd-cgls -M, getent hosts", async () => {
    const ref = host.spawn(['systemd-nspawn', '-q', '-D', INNER_TREE, '-M', 'mh-ref', '-n', '/bin/sh', '-c',
      'ip link set host0 up; ip addr add 10.250.0.2/24 dev host0; exec sleep 300'], { scope: true });
    let show = '';
    for (let i = 0; i < 200 && !/State=running/.test(show); i++) {
      show = (await host.exec(['machinectl', 'show', 'mh-ref'])).stdout;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(show).toMatch(/^Service=systemd-nspawn$/m);
    expect(show).toMatch(/^Class=container$/m);
    expect(show).toMatch(/^Unit=machine-mh\\x2dref\.scope$/m);
    expect(show).toMatch(/^RootDirectory=\/var\/lib\/machines\/inner$/m);
    const leader = /^Leader=(\d+)$/m.exec(show)![1]!;
    expect(await host.run(['machinectl', 'list', '--no-pager', '--no-legend'])).toMatch(/^mh-ref\s+container\s+systemd-nspawn\s/m);
    const status = await host.run(['machinectl', 'status', 'mh-ref', '--no-pager']);
    expect(status).toMatch(/Unit: machine-mh\\x2dref\.scope/);
    expect(status).toMatch(/payload/);
    // the leader's cgroup: payload/ below the delegated scope (systemd-nspawn's create_subcgroup)
    expect(await host.run(['cat', `/proc/${leader}/cgroup`])).toMatch(/^0::\/machine\.slice\/machine-mh\\x2dref\.scope\/payload$/m);
    expect(await host.run(['systemctl', 'show', '-p', 'Delegate', '--value', 'machine-mh\\x2dref.scope'])).toBe('yes\n');
    const cgls = await host.run(['systemd-cgls', '-M', 'mh-ref', '--no-pager']);
    expect(cgls).toMatch(/sleep 300/);
    // nss-mymachines: the container's address, once host0 has one
    let hosts = '';
    for (let i = 0; i < 100 && !hosts; i++) {
      hosts = (await host.exec(['getent', 'hosts', 'mh-ref'])).stdout;
      if (!hosts) await new Promise((r) => setTimeout(r, 50));
    }
    expect(hosts).toMatch(/^10\.250\.0\.2\s+mh-ref$/m);
    await host.run(['machinectl', 'terminate', 'mh-ref']);
    const code = await new Promise<number | null>((r) => (ref.exitCode !== null || ref.signalCode !== null ? r(ref.exitCode) : ref.on('close', r)));
    expect(code).not.toBe(null);
    expect(await host.run(['machinectl', 'list', '--no-pager', '--no-legend'])).toBe('');
  });
});

describe('shutdown', () => {
  it('removes the copy and the cgroups, and kills what it started', async () => {
    const { dir, nspawnPid, leader } = host;
    await host.shutdown();
    expect(existsSync(dir)).toBe(false);
    expect(existsSync(`/proc/${nspawnPid}`)).toBe(false);
    expect(existsSync(`/proc/${leader}`)).toBe(false);
    expect(existsSync(`/sys/fs/cgroup/unified/${NAME}`) || existsSync(`/sys/fs/cgroup/${NAME}`)).toBe(false);
    expect(existsSync(`/sys/fs/cgroup/systemd/${NAME}`)).toBe(false);
  });
});
