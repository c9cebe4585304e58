/**
 * Root tests of the planner's apply step and its undo through startNetwork() (@nspawn/net alone): a network
 * namespace of the test's own (`unshare -n sleep`), machine and zone names prefixed nt-, a state directory, hosts
 * file and nft table of the test's own, ip_forward left alone. Everything is checked gone after.
 */
import { execFile, execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { promisify } from 'node:util';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startNetwork, type NetworkSession, type StartNetworkOptions } from '../src/index.js';

const TABLE = 'nt_policy';

beforeAll(() => {
  if (process.getuid?.() !== 0) throw new Error('these tests need root');
});

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const linkExists = (n: string) => existsSync(`/sys/class/net/${n}`);
const nftHas = () => spawnSync('nft', ['list', 'table', 'ip', TABLE], { encoding: 'utf8' });

async function netns(): Promise<number> {
  const p: ChildProcess = spawn('unshare', ['-n', 'sleep', '60'], { stdio: 'ignore' });
  cleanups.push(() => {
    p.kill('SIGKILL');
  });
  for (let i = 0; i < 400; i++) {
    try {
      if (readlinkSync(`/proc/${p.pid}/ns/net`) !== readlinkSync('/proc/self/ns/net')) return p.pid!;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error('no network namespace');
}

function options(): StartNetworkOptions {
  const dir = mkdtempSync(join(tmpdir(), 'nspawn-test-policy-'));
  const hostsPath = join(dir, 'hosts');
  writeFileSync(hostsPath, '127.0.0.1 localhost\n');
  cleanups.push(() => {
    if (nftHas().status === 0) execFileSync('nft', ['delete', 'table', 'ip', TABLE]);
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir: join(dir, 'state'), hostsPath, nftTable: TABLE, ipForward: false };
}

async function start(...a: Parameters<typeof startNetwork>): Promise<NetworkSession> {
  const s = await startNetwork(...a);
  cleanups.push(() => s.close().catch(() => {}));
  return s;
}

const inNs = (pid: number, ...cmd: string[]) => execFileSync('nsenter', [`--net=/proc/${pid}/ns/net`, ...cmd], { encoding: 'utf8' });

/** a TCP connection from the namespace of PID to ADDRESS:PORT (a Node of its own in there), the server's reply */
async function connectFrom(pid: number, address: string, port: number): Promise<string> {
  const js = `const s = require('node:net').connect(${port}, '${address}'); s.setTimeout(3000, () => process.exit(3)); s.on('data', (d) => { process.stdout.write(d); s.end(); }); s.on('error', (e) => { console.error(e.message); process.exit(2); });`;
  // (asynchronous: the server may be this process)
  const r = await promisify(execFile)('nsenter', [`--net=/proc/${pid}/ns/net`, process.execPath, '-e', js], { encoding: 'utf8' });
  return r.stdout;
}

describe('startNetwork (a veth)', () => {
  it('host0 gets the address, the default route, NAT, a name and a DHCP lease; the host side answers; close() removes all of it', async () => {
    const pid = await netns();
    const o = options();
    const s = await start({ machine: 'nt-pol', veth: true, ports: [{ protocol: 'tcp', hostPort: 18431, containerPort: 80 }] }, pid, o);
    const a = s.plan.addressing!;
    expect(s.applied.links).toEqual(['ve-nt-pol']);
    expect(inNs(pid, 'ip', '-4', '-o', 'address', 'show', 'dev', 'host0')).toContain(`inet ${a.containerAddress}/28 brd ${a.broadcast}`);
    expect(inNs(pid, 'ip', '-4', 'route', 'show', 'default')).toContain(`default via ${a.hostAddress} dev host0`);
    expect(execFileSync('ip', ['-4', '-o', 'address', 'show', 'dev', 've-nt-pol'], { encoding: 'utf8' })).toContain(`inet ${a.hostAddress}/28`);
    // the host side answers a connection from the container
    const srv = createServer((c) => c.end('hello from the host\n'));
    await new Promise<void>((r) => srv.listen(0, a.hostAddress, r));
    cleanups.push(() => void srv.close());
    const port = (srv.address() as { port: number }).port;
    expect(await connectFrom(pid, a.hostAddress, port)).toBe('hello from the host\n');
    // masquerading and the port's DNAT in the test's own table; the name in the test's hosts file
    const table = nftHas().stdout;
    expect(table).toContain(`ip saddr ${a.subnet.network}/28 ip daddr != ${a.subnet.network}/28 masquerade`);
    expect(table).toContain(`tcp dport 18431 dnat to ${a.containerAddress}:80`);
    expect(readFileSync(o.hostsPath!, 'utf8')).toMatch(new RegExp(`^${a.containerAddress.replaceAll('.', '\\.')}\\s+nt-pol$`, 'm'));
    // a DHCP client in the container gets the plan's address
    expect(s.applied.dhcp).toBeDefined();
    // (asynchronous: the server is this process; the address flushed first, as a booting container has none)
    inNs(pid, 'ip', 'address', 'flush', 'dev', 'host0');
    const dhcp = await promisify(execFile)('nsenter', [`--net=/proc/${pid}/ns/net`, 'busybox', 'udhcpc', '-i', 'host0', '-n', '-q', '-f', '-t', '5', '-T', '1', '-s', '/bin/true'], { encoding: 'utf8', timeout: 20000 });
    expect(`${dhcp.stdout}${dhcp.stderr}`).toContain(`lease of ${a.containerAddress} obtained`);
    // the record lists the link
    const recs = readdirSync(o.dir!).filter((f) => f.endsWith('.json'));
    expect(recs).toEqual([`nt-pol.${process.pid}.json`]);
    expect(JSON.parse(readFileSync(join(o.dir!, recs[0]!), 'utf8')).links).toEqual(['ve-nt-pol']);

    await s.close();
    expect(linkExists('ve-nt-pol')).toBe(false);
    expect(nftHas().status).not.toBe(0);
    expect(readFileSync(o.hostsPath!, 'utf8')).not.toContain('nt-pol');
    expect(readdirSync(o.dir!).filter((f) => f.endsWith('.json'))).toEqual([]);
    expect(inNs(pid, 'ip', '-o', 'link', 'show')).not.toContain('host0');
  });

  it('a failure half-way (a macvlan on a missing parent) leaves nothing: no link, record, rule or name', async () => {
    const pid = await netns();
    const o = options();
    await expect(startNetwork({ machine: 'nt-half', veth: true, macvlan: ['nt-nope0'] }, pid, o)).rejects.toThrow(/nt-nope0/);
    expect(linkExists('ve-nt-half')).toBe(false);
    expect(readdirSync(o.dir!).filter((f) => f.endsWith('.json'))).toEqual([]);
    expect(nftHas().status).not.toBe(0);
    expect(readFileSync(o.hostsPath!, 'utf8')).not.toContain('nt-half');
  });
});

describe('startNetwork (a zone)', () => {
  it('two members share vz-ZONE\'s /24 and reach each other; the bridge goes with the last one', async () => {
    const o = options();
    const [p1, p2] = [await netns(), await netns()];
    const s1 = await start({ machine: 'nt-z1', veth: true, zone: 'nt-pz' }, p1, o);
    const s2 = await start({ machine: 'nt-z2', veth: true, zone: 'nt-pz' }, p2, o);
    const [a1, a2] = [s1.plan.addressing!, s2.plan.addressing!];
    expect(a2.subnet).toEqual(a1.subnet);
    expect(a1.hostIf).toBe('vz-nt-pz');
    expect(a2.containerAddress).not.toBe(a1.containerAddress);
    expect(readdirSync('/sys/class/net/vz-nt-pz/brif').sort()).toEqual(['vb-nt-z1', 'vb-nt-z2']);
    // the second member reaches the first one through the bridge
    const srv = `const s = require('node:net').createServer((c) => c.end('z1\\n')).listen(7001, '${a1.containerAddress}', () => console.log('up'));`;
    const server = spawn('nsenter', [`--net=/proc/${p1}/ns/net`, process.execPath, '-e', srv], { stdio: ['ignore', 'pipe', 'inherit'] });
    cleanups.push(() => void server.kill('SIGKILL'));
    await new Promise((r) => server.stdout!.once('data', r));
    expect(await connectFrom(p2, a1.containerAddress, 7001)).toBe('z1\n');

    await s1.close();
    expect(linkExists('vz-nt-pz')).toBe(true);
    expect(execFileSync('ip', ['-4', '-o', 'address', 'show', 'dev', 'vz-nt-pz'], { encoding: 'utf8' })).toContain(a1.hostAddress);
    await s2.close();
    expect(linkExists('vz-nt-pz')).toBe(false);
    expect(linkExists('vb-nt-z1') || linkExists('vb-nt-z2')).toBe(false);
    expect(nftHas().status).not.toBe(0);
  });
});
