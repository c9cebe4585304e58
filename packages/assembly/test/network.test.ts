/**
 * Root integration tests of nspawn's networking, through the nspawn command: veth host0 configured before the
 * payload, host <-> container ping and TCP, zones, port forwarding (loopback v4/v6 and another netns), macvlan,
 * ipvlan, moved interfaces, leftovers after kill -9, and the same names and MACs as systemd-nspawn. Every link,
 * netns and address is one the test (or nspawn) made; names start with nt-. No traffic leaves them.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { lookup } from 'node:dns/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateMac } from '@nspawn/net';
import { makeTree, NSPAWN_BIN, referenceCommand, requireRoot, SYSTEMD_NSPAWN } from './helpers.js';

beforeAll(requireRoot);

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) {
    try {
      await cleanups.pop()!();
    } catch (e) {
      console.error(e);
    }
  }
});

let tree: ReturnType<typeof makeTree>;
beforeAll(() => {
  tree = makeTree('nt-net-');
});
afterAll(() => tree?.cleanup());

const ip = (...a: string[]) => execFileSync('ip', a, { encoding: 'utf8' });
const linkExists = (n: string) => existsSync(`/sys/class/net/${n}`);
const records = () => {
  try {
    return readdirSync('/run/nspawn/net').filter((f) => f.startsWith('nt-') && f.endsWith('.json'));
  } catch {
    return [];
  }
};
const hostsHas = (name: string) => readFileSync('/etc/hosts', 'utf8').split('\n').some((l) => l.split(/\s+/).slice(1).includes(name));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor<T>(f: () => T | undefined | false, what: string, ms = 10000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

interface Running {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  done: Promise<number>;
}
/** for the tests that run two containers on the one test tree at once: no image locks, for either tool */
const NO_LOCK = { SYSTEMD_NSPAWN_LOCK: '0' };
function nspawn(args: string[], env: NodeJS.ProcessEnv = {}): Running {
  const child = spawn(process.execPath, [NSPAWN_BIN, '-q', '--console=pipe', '-D', tree.root, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const done = new Promise<number>((res) => child.on('exit', (c) => res(c ?? 128)));
  cleanups.push(async () => {
    if (child.exitCode === null) {
      child.kill('SIGKILL');
      await done;
    }
  });
  return { child, out: () => out, err: () => err, done };
}
/** a file in the tree that the container's loop waits for */
function stopFile(name: string): { path: string; inside: string; stop: () => void } {
  const inside = `/nt-stop-${name}`;
  const path = join(tree.root, inside);
  rmSync(path, { force: true });
  cleanups.push(() => rmSync(path, { force: true }));
  return { path, inside, stop: () => writeFileSync(path, '') };
}
const waitStop = (inside: string) => `while [ ! -e ${inside} ]; do sleep 0.05; done`;

function expectNothingLeft(machine: string, hostIf: string) {
  expect(linkExists(hostIf)).toBe(false);
  expect(records().filter((r) => r.startsWith(`${machine}.`))).toEqual([]);
  expect(hostsHas(machine)).toBe(false);
}

describe('--network-veth', () => {
  it('configures host0 before the payload; ping and TCP both ways; the name resolves on the host while it runs', async () => {
    const srv: Server = createServer((_q, r) => r.end('from-host'));
    await new Promise<void>((r) => srv.listen(0, '0.0.0.0', r));
    cleanups.push(() => void srv.close());
    const port = (srv.address() as { port: number }).port;
    const s = stopFile('veth');
    const c = nspawn([
      '-M', 'nt-net1', '-n', 'sh', '-c',
      `ip -4 -o addr show host0; ip -6 -o addr show host0; gw=$(ip route | awk '/default/{print $3}'); echo GW=$gw;
       ping -c1 -W2 $gw >/dev/null && echo PING-OK; wget -qO- http://$gw:${port}/; echo;
       mkdir -p /tmp/www; echo from-container > /tmp/www/index.html; httpd -p 8080 -h /tmp/www; echo READY; ${waitStop(s.inside)}`,
    ]);
    await waitFor(() => c.out().includes('READY') || c.child.exitCode !== null, 'READY');
    expect(c.out()).toMatch(/host0\s+inet (10|172|192)\.\d+\.\d+\.\d+\/28/);
    expect(c.out()).toContain('PING-OK');
    expect(c.out()).toMatch(/host0\s+inet6 fe80::/); // IPv6 link-local
    expect(c.out()).toContain('from-host');
    expect(linkExists('ve-nt-net1')).toBe(true);
    const { address } = await lookup('nt-net1', { family: 4 });
    expect(c.out()).toContain(`inet ${address}/28`);
    expect(spawnSync('busybox', ['ping', '-c1', '-W2', address]).status).toBe(0);
    const body = await (await fetch(`http://${address}:8080/`)).text();
    expect(body).toBe('from-container\n');
    s.stop();
    expect(await c.done).toBe(0);
    expectNothingLeft('nt-net1', 've-nt-net1');
  });
});

describe('DHCP', () => {
  it('a container running its own DHCP client (busybox udhcpc) gets the same address', async () => {
    const script = join(tree.root, 'nt-dhcp.sh');
    writeFileSync(script, '#!/bin/sh\necho "DHCP $1 ip=$ip router=$router mask=$subnet"\n', { mode: 0o755 });
    cleanups.push(() => rmSync(script, { force: true }));
    const c = nspawn(['-M', 'nt-dh', '-n', 'sh', '-c', 'ip -4 -o addr show host0; ip addr flush dev host0; udhcpc -i host0 -f -q -n -t 3 -T 1 -s /nt-dhcp.sh']);
    expect(await c.done).toBe(0);
    const before = /inet (\d+\.\d+\.\d+\.\d+)\/28/.exec(c.out())?.[1];
    expect(before).toBeDefined();
    expect(c.out()).toMatch(new RegExp(`DHCP bound ip=${before!.replaceAll('.', '\\.')} router=\\S+ mask=255\\.255\\.255\\.240`));
  });
});

describe('--network-zone', () => {
  it('two containers in one zone reach each other; vz-ZONE goes with the last one', async () => {
    const s1 = stopFile('z1');
    const s2 = stopFile('z2');
    // two containers on the one test tree at once: without the image lock (as SYSTEMD_NSPAWN_LOCK=0 does for systemd)
    const a = nspawn(['-M', 'nt-z1', '--network-zone=nt-zn', 'sh', '-c', `mkdir -p /tmp/w; echo zone-peer > /tmp/w/index.html; httpd -p 8081 -h /tmp/w; echo READY; ${waitStop(s1.inside)}`], NO_LOCK);
    await waitFor(() => a.out().includes('READY') || a.child.exitCode !== null, 'first container');
    expect(linkExists('vz-nt-zn')).toBe(true);
    expect(linkExists('vb-nt-z1')).toBe(true);
    const { address } = await lookup('nt-z1', { family: 4 });
    const b = nspawn(['-M', 'nt-z2', '--network-zone=nt-zn', 'sh', '-c', `ping -c1 -W2 ${address} >/dev/null && echo PING-OK; wget -qO- http://${address}:8081/; echo DONE; ${waitStop(s2.inside)}`], NO_LOCK);
    await waitFor(() => b.out().includes('DONE') || b.child.exitCode !== null, 'second container');
    expect(b.out()).toContain('PING-OK');
    expect(b.out()).toContain('zone-peer');
    s2.stop();
    expect(await b.done).toBe(0);
    expect(linkExists('vz-nt-zn')).toBe(true); // one member left
    s1.stop();
    expect(await a.done).toBe(0);
    expect(linkExists('vz-nt-zn')).toBe(false);
    expectNothingLeft('nt-z1', 'vb-nt-z1');
    expectNothingLeft('nt-z2', 'vb-nt-z2');
  });
});

describe('--port', () => {
  it('forwards to a container: from 127.0.0.1, from ::1, and from another network namespace over IPv4 and IPv6', async () => {
    // the other namespace: a veth of our own with addresses from the benchmarking range
    spawnSync('ip', ['netns', 'del', 'nt-pfns']);
    ip('netns', 'add', 'nt-pfns');
    cleanups.push(() => void spawnSync('ip', ['netns', 'del', 'nt-pfns']));
    ip('link', 'add', 'nt-pfa', 'type', 'veth', 'peer', 'name', 'nt-pfb', 'netns', 'nt-pfns');
    cleanups.push(() => void spawnSync('ip', ['link', 'del', 'nt-pfa']));
    ip('addr', 'add', '198.18.0.1/30', 'dev', 'nt-pfa');
    ip('link', 'set', 'nt-pfa', 'up');
    ip('-n', 'nt-pfns', 'addr', 'add', '198.18.0.2/30', 'dev', 'nt-pfb');
    ip('-n', 'nt-pfns', 'link', 'set', 'nt-pfb', 'up');
    ip('-n', 'nt-pfns', 'link', 'set', 'lo', 'up');
    ip('addr', 'add', 'fdee:6e74::1/64', 'dev', 'nt-pfa', 'nodad');
    ip('-n', 'nt-pfns', 'addr', 'add', 'fdee:6e74::2/64', 'dev', 'nt-pfb', 'nodad');

    const s = stopFile('pf');
    const c = nspawn(['-M', 'nt-pf', '-n', '-p', 'tcp:18080:80', 'sh', '-c', `mkdir -p /tmp/w; echo forwarded > /tmp/w/index.html; httpd -p 80 -h /tmp/w; echo READY; ${waitStop(s.inside)}`]);
    await waitFor(() => c.out().includes('READY') || c.child.exitCode !== null, 'READY');
    expect(execFileSync('nft', ['list', 'table', 'ip', 'nspawn'], { encoding: 'utf8' })).toContain('dport 18080 dnat to');
    expect(await (await fetch('http://127.0.0.1:18080/')).text()).toBe('forwarded\n');
    expect(await (await fetch('http://[::1]:18080/')).text()).toBe('forwarded\n');
    const other = spawnSync('nsenter', ['--net=/run/netns/nt-pfns', 'curl', '-sS', '-m', '3', 'http://198.18.0.1:18080/'], { encoding: 'utf8' });
    expect(other.stdout, other.stderr + String(other.status)).toBe('forwarded\n');
    const other6 = spawnSync('nsenter', ['--net=/run/netns/nt-pfns', 'curl', '-sS', '-m', '3', 'http://[fdee:6e74::1]:18080/'], { encoding: 'utf8' });
    expect(other6.stdout, other6.stderr).toBe('forwarded\n');
    s.stop();
    expect(await c.done).toBe(0);
    expectNothingLeft('nt-pf', 've-nt-pf');
    const tables = execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' });
    if (records().length === 0 && readdirSync('/run/nspawn/net').filter((f) => f.endsWith('.json')).length === 0) expect(tables).not.toContain('table ip nspawn');
  });
});

/** a dummy link, or a veth end where the kernel has no dummy driver */
function dummy(name: string) {
  if (spawnSync('ip', ['link', 'add', name, 'type', 'dummy']).status !== 0) ip('link', 'add', name, 'type', 'veth', 'peer', 'name', `${name}p`);
  cleanups.push(() => {
    if (linkExists(name)) ip('link', 'del', name);
    if (linkExists(`${name}p`)) ip('link', 'del', `${name}p`);
  });
}
function kernelHas(kind: string): boolean {
  spawnSync('ip', ['link', 'add', 'nt-probe0', 'type', 'veth', 'peer', 'name', 'nt-probe1']);
  const ok = spawnSync('ip', ['link', 'add', 'link', 'nt-probe0', 'name', 'nt-probe2', 'type', kind]).status === 0;
  spawnSync('ip', ['link', 'del', 'nt-probe0']);
  return ok;
}

describe('macvlan, ipvlan, --network-interface', () => {
  it('--network-macvlan makes mv-IF in the container with systemd\'s MAC', async () => {
    dummy('nt-pm0');
    const c = nspawn(['-M', 'nt-mv', '--network-macvlan=nt-pm0', 'sh', '-c', 'ip link show mv-nt-pm0; cat /sys/class/net/mv-nt-pm0/address']);
    expect(await c.done).toBe(0);
    expect(c.out()).toMatch(/mv-nt-pm0@if\d+/);
    expect(c.out()).toContain(generateMac('nt-mv', 'macvlan'));
  });

  it.skipIf(!kernelHas('ipvlan'))('--network-ipvlan makes iv-IF in the container', async () => {
    dummy('nt-pi0');
    const c = nspawn(['-M', 'nt-iv', '--network-ipvlan=nt-pi0', 'ip', 'link']);
    expect(await c.done).toBe(0);
    expect(c.out()).toMatch(/iv-nt-pi0@if\d+/);
  });

  it('--network-interface moves the link in and back to the host when the container ends', async () => {
    dummy('nt-if0');
    const c = nspawn(['-M', 'nt-if', '--network-interface=nt-if0', 'sh', '-c', 'ip link show nt-if0 && echo INSIDE']);
    expect(await c.done).toBe(0);
    expect(c.out()).toContain('INSIDE');
    expect(linkExists('nt-if0')).toBe(true);
  });

  it('a start that fails after the veth was made leaves nothing behind', async () => {
    const c = nspawn(['-M', 'nt-fail', '-n', '-p', 'tcp:18090:80', '--network-macvlan=nt-nonexist', 'true']);
    expect(await c.done).toBe(1);
    expect(c.err()).toContain('Failed to resolve interface nt-nonexist: ENODEV');
    expectNothingLeft('nt-fail', 've-nt-fail');
    expect(spawnSync('nft', ['list', 'table', 'ip', 'nspawn'], { encoding: 'utf8' }).stdout).not.toContain('18090');
  });

  it('a missing interface fails the start cleanly', async () => {
    const c = nspawn(['-M', 'nt-ifx', '--network-interface=nt-nonexist', 'true']);
    expect(await c.done).not.toBe(0);
    expect(c.err()).toMatch(/nt-nonexist.*ENODEV/);
    expect(records().filter((r) => r.startsWith('nt-ifx.'))).toEqual([]);
  });
});

describe('--network-bridge, --network-veth-extra, --network-namespace-path', () => {
  it('vb-NAME joins the given bridge; extra veths get their names; all go at the end', async () => {
    ip('link', 'add', 'nt-br0', 'type', 'bridge');
    cleanups.push(() => void spawnSync('ip', ['link', 'del', 'nt-br0']));
    const s = stopFile('br');
    const c = nspawn(['-M', 'nt-brc', '--network-bridge=nt-br0', '--network-veth-extra=nt-xh:xc', 'sh', '-c', `ip link show xc && echo READY; ${waitStop(s.inside)}`]);
    await waitFor(() => c.out().includes('READY') || c.child.exitCode !== null, 'READY');
    expect(ip('-o', 'link', 'show', 'master', 'nt-br0')).toContain('vb-nt-brc@');
    expect(linkExists('nt-xh')).toBe(true);
    s.stop();
    expect(await c.done).toBe(0);
    expect(linkExists('vb-nt-brc')).toBe(false);
    expect(linkExists('nt-xh')).toBe(false);
    expect(linkExists('nt-br0')).toBe(true); // not ours
  });

  it('--network-namespace-path joins a namespace; systemd\'s conflicts are refused', async () => {
    spawnSync('ip', ['netns', 'del', 'nt-nsp']);
    ip('netns', 'add', 'nt-nsp');
    cleanups.push(() => void spawnSync('ip', ['netns', 'del', 'nt-nsp']));
    ip('link', 'add', 'nt-nspv', 'type', 'veth', 'peer', 'name', 'nt-nspw', 'netns', 'nt-nsp');
    cleanups.push(() => void spawnSync('ip', ['link', 'del', 'nt-nspv']));
    const c = nspawn(['-M', 'nt-nsp', '--network-namespace-path=/run/netns/nt-nsp', 'ip', 'link']);
    expect(await c.done).toBe(0);
    expect(c.out()).toContain('nt-nspw@');
    const d = nspawn(['-M', 'nt-nsp', '--network-namespace-path=/run/netns/nt-nsp', '-n', 'true']);
    expect(await d.done).toBe(1);
    expect(d.err()).toContain('Cannot combine --network-namespace-path=');
    const e = nspawn(['-M', 'nt-nsp', '--network-namespace-path=/etc/hostname', 'true']);
    expect(await e.done).toBe(1);
    expect(e.err()).toContain("Path /etc/hostname doesn't refer to a network namespace, refusing.");
  });
});

describe('cleanup', () => {
  it('after kill -9 of nspawn, the next start (any: this one has no network) collects the leftovers', async () => {
    // (a safety net: the collection removes the killed nspawn's scope, checked below)
    cleanups.push(() => {
      for (const h of readdirSync('/sys/fs/cgroup')) {
        const scope = `/sys/fs/cgroup/${h}/machine.slice/machine-nt\\x2dk9.scope`;
        if (existsSync(scope)) spawnSync('rmdir', [scope]);
      }
    });
    const c = nspawn(['-M', 'nt-k9', '-n', '-p', 'tcp:18089:80', 'sh', '-c', 'echo READY; sleep 30']);
    await waitFor(() => c.out().includes('READY'), 'READY');
    expect(hostsHas('nt-k9')).toBe(true);
    c.child.kill('SIGKILL');
    await c.done;
    await waitFor(() => !linkExists('ve-nt-k9'), 'the veth to die with the namespace');
    expect(records().some((r) => r.startsWith('nt-k9.'))).toBe(true); // left behind
    const d = nspawn(['-M', 'nt-k9b', 'true']);
    expect(await d.done).toBe(0);
    expectNothingLeft('nt-k9', 've-nt-k9');
    expect(existsSync('/run/nspawn/runs/nt-k9.lock'), 'its run record').toBe(false);
    expect(readdirSync('/sys/fs/cgroup').filter((h) => existsSync(`/sys/fs/cgroup/${h}/machine.slice/machine-nt\\x2dk9.scope`)), 'its scope').toEqual([]);
    const table = spawnSync('nft', ['list', 'table', 'ip', 'nspawn'], { encoding: 'utf8' });
    expect(table.stdout.includes('18089')).toBe(false);
  });
});

describe('zone lock', () => {
  it('nspawn-helper --ofd-lock holds an open-file-description lock for the description Node keeps', async () => {
    const path = join(tree.dir, 'nt-zone.lck');
    writeFileSync(path, '');
    const { openSync, closeSync } = await import('node:fs');
    const { helperLocker, helperPath } = await import('../src/index.js');
    const fd1 = openSync(path, 'r+');
    helperLocker(fd1);
    const fd2 = openSync(path, 'r+');
    const waiter = spawn(helperPath(), ['--ofd-lock'], { stdio: ['ignore', 'ignore', 'pipe', fd2] });
    const exited = new Promise<number>((r) => waiter.on('exit', (c) => r(c ?? 128)));
    await sleep(300);
    expect(waiter.exitCode).toBeNull(); // blocked by the lock on fd1's description
    closeSync(fd1);
    expect(await exited).toBe(0);
    closeSync(fd2);
  });
});

describe('safety', () => {
  it('a second container of the same name fails and leaves the first one\'s link alone', async () => {
    const s = stopFile('dup');
    const a = nspawn(['-M', 'nt-dup', '-n', 'sh', '-c', `echo READY; ${waitStop(s.inside)}`]);
    await waitFor(() => a.out().includes('READY'), 'READY');
    const b = nspawn(['-M', 'nt-dup', '-n', 'true']);
    expect(await b.done).toBe(1);
    expect(b.err()).toMatch(/Failed to (allocate the cgroup|create veth ve-nt-dup: EEXIST)/);
    expect(linkExists('ve-nt-dup')).toBe(true);
    expect(hostsHas('nt-dup')).toBe(true);
    s.stop();
    expect(await a.done).toBe(0);
    expectNothingLeft('nt-dup', 've-nt-dup');
  });
});

describe.skipIf(!existsSync(SYSTEMD_NSPAWN))('side by side with systemd-nspawn', () => {
  /** the host side's name, altnames and MAC, and host0's MAC, while the container runs */
  async function observe(tool: 'systemd-nspawn' | 'nspawn', name: string) {
    const s = stopFile(`cmp-${tool}`);
    const args = ['-M', name, '-n', 'sh', '-c', `cat /sys/class/net/host0/address; ${waitStop(s.inside)}`];
    let r: Running;
    if (tool === 'nspawn') r = nspawn(args);
    else {
      const child = spawn(...referenceCommand(['--register=no', '--keep-unit', '-q', '-D', tree.root, ...args]), { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (err += d));
      const done = new Promise<number>((res) => child.on('exit', (c) => res(c ?? 128)));
      cleanups.push(async () => {
        if (child.exitCode === null) {
          child.kill('SIGKILL');
          await done;
        }
      });
      r = { child, out: () => out, err: () => err, done };
    }
    const containerMac = (await waitFor(() => /^([0-9a-f:]{17})$/m.exec(r.out()), `${tool}'s host0`))[1];
    const line = await waitFor(() => ip('-d', '-o', 'link', 'show').split('\n').find((l) => l.includes(`altname ve-${name}`) || new RegExp(`^\\d+: ve-${name}@`).test(l)), `${tool}'s ve- link`);
    s.stop();
    await r.done;
    const m = /^\d+: ([^@:]+)@\S+ .*link\/ether ([0-9a-f:]{17})/.exec(line)!;
    return { host: m[1], hostMac: m[2], altnames: [...line.matchAll(/altname (\S+)/g)].map((x) => x[1]), containerMac };
  }

  // (--network-macvlan is not compared: systemd-nspawn wants udev to have initialized the parent, and this host
  // has no udev; mv- MACs come from the same generate_mac() as these, with the macvlan key)
  it('same container-side names and MACs for --network-veth-extra, and for host0 in a zone', async () => {
    const run = async (tool: 'systemd-nspawn' | 'nspawn') => {
      const args = ['-M', 'nt-cmpx', '--network-zone=nt-cz', '--network-veth-extra=nt-cxh:cx', 'sh', '-c',
        'for i in host0 cx; do echo $i $(cat /sys/class/net/$i/address); done; ls /sys/class/net | sort | tr "\\n" " "'];
      if (tool === 'nspawn') {
        const r = nspawn(args);
        expect(await r.done).toBe(0);
        return r.out();
      }
      const r = spawnSync(...referenceCommand(['--register=no', '--keep-unit', '-q', '--console=pipe', '-D', tree.root, ...args]), { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      return r.stdout;
    };
    const theirs = await run('systemd-nspawn');
    const ours = await run('nspawn');
    expect(ours).toBe(theirs);
    expect(ours).toMatch(/^host0 [0-9a-f:]{17}\ncx [0-9a-f:]{17}\n/);
    expect(linkExists('vz-nt-cz')).toBe(false);
    expect(linkExists('nt-cxh')).toBe(false);
  });

  it('shares a zone with systemd-nspawn: our address leaves its bridge with our last container, the bridge stays', async () => {
    const s = stopFile('sdz');
    const sd = spawn(...referenceCommand(['--register=no', '--keep-unit', '-q', '--console=pipe', '-D', tree.root, '-M', 'nt-sdz', '--network-zone=nt-zs', 'sh', '-c', waitStop(s.inside)]), { stdio: 'ignore', env: { ...process.env, ...NO_LOCK } });
    const sdDone = new Promise((r) => sd.on('exit', r));
    cleanups.push(async () => {
      if (sd.exitCode === null) {
        sd.kill('SIGKILL');
        await sdDone;
      }
    });
    await waitFor(() => linkExists('vb-nt-sdz') && linkExists('vz-nt-zs'), "systemd-nspawn's zone");
    const c = nspawn(['-M', 'nt-ourz', '--network-zone=nt-zs', 'ip', '-4', '-o', 'addr', 'show', 'host0'], NO_LOCK);
    expect(await c.done).toBe(0);
    const m = /inet (\d+\.\d+\.\d+)\.\d+\/24/.exec(c.out());
    expect(m).not.toBeNull();
    expect(linkExists('vz-nt-zs')).toBe(true); // systemd-nspawn's member is still in it
    expect(ip('-4', '-o', 'addr', 'show', 'dev', 'vz-nt-zs')).not.toContain(`${m![1]}.1/24`);
    s.stop();
    await sdDone;
    expect(linkExists('vz-nt-zs')).toBe(false);
  });

  for (const name of ['nt-cmp', 'nt-a30charactermachinename-xyz']) {
    it(`same interface names, altnames and MACs for ${name} (${name.length} characters)`, async () => {
      const theirs = await observe('systemd-nspawn', name);
      const ours = await observe('nspawn', name);
      expect(ours).toEqual(theirs);
      if (name.length === 30) expect(theirs.altnames).toEqual([`ve-${name}`]);
    });
  }
});
