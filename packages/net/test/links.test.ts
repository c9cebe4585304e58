/**
 * Root integration tests of @nspawn/net alone: real links between network namespaces the tests make
 * (`unshare -n sleep`), names prefixed nt-. Nothing leaves these links.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createIpvlan,
  createMacvlan,
  createVeth,
  createVethExtra,
  generateMac,
  hostMachineId,
  joinZone,
  leaveZone,
  moveInterfaces,
  moveInterfacesBack,
  removeLinks,
  Rtnl,
  NetlinkError,
} from '../src/index.js';

beforeAll(() => {
  if (process.getuid?.() !== 0) throw new Error('these tests need root');
});

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function netnsProcess(): ChildProcess {
  const p = spawn('unshare', ['-n', 'sleep', '30'], { stdio: 'ignore' });
  cleanups.push(() => {
    p.kill('SIGKILL');
  });
  return p;
}
async function waitNetns(p: ChildProcess): Promise<number> {
  const pid = p.pid!;
  // unshare execs sleep in the new namespace: wait until the namespace differs from ours
  const { readlinkSync } = await import('node:fs');
  for (let i = 0; i < 200; i++) {
    try {
      if (readlinkSync(`/proc/${pid}/ns/net`) !== readlinkSync('/proc/self/ns/net')) return pid;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error('no netns');
}
const inNs = (pid: number, ...cmd: string[]) => execFileSync('nsenter', ['-t', String(pid), '-n', ...cmd], { encoding: 'utf8' });
const ip = (...a: string[]) => execFileSync('ip', a, { encoding: 'utf8' });
const linkExists = (n: string) => existsSync(`/sys/class/net/${n}`);
/** a dummy link; on kernels without the dummy driver, one end of a veth pair (NAME and NAME-p) stands in */
function dummy(name: string) {
  try {
    execFileSync('ip', ['link', 'add', name, 'type', 'dummy'], { stdio: 'ignore' });
  } catch {
    ip('link', 'add', name, 'type', 'veth', 'peer', 'name', `${name}p`);
  }
  cleanups.push(() => {
    if (linkExists(name)) ip('link', 'del', name);
    if (linkExists(`${name}p`)) ip('link', 'del', `${name}p`);
  });
}
/** whether this kernel has the ipvlan driver (some VM kernels do not) */
function kernelHas(kind: string): boolean {
  try {
    execFileSync('ip', ['link', 'add', 'nt-probe0', 'type', 'veth', 'peer', 'name', 'nt-probe1'], { stdio: 'ignore' });
    try {
      execFileSync('ip', ['link', 'add', 'link', 'nt-probe0', 'name', 'nt-probe2', 'type', kind], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  } finally {
    execFileSync('ip', ['link', 'del', 'nt-probe0'], { stdio: 'ignore' });
  }
}

describe('createVeth', () => {
  it('makes ve-NAME on the host and host0 in the namespace, with systemd MACs; a long name gets shortened and an altname', async () => {
    const pid = await waitNetns(netnsProcess());
    const name = 'nt-averyveryverylongmachinenam'; // 30 characters
    expect(name.length).toBe(30);
    const warnings: string[] = [];
    const v = await createVeth(name, pid, { warn: (l) => warnings.push(l) });
    cleanups.push(() => removeLinks([v.host]));
    expect(v.host).toHaveLength(15);
    expect(v.altname).toBe(`ve-${name}`);
    expect(warnings[0]).toContain('has been changed to');
    const host = ip('-d', 'link', 'show', v.host);
    expect(host).toContain(`altname ve-${name}`);
    expect(host).toContain(generateMac(name, 'host', { machineId: hostMachineId() }));
    expect(inNs(pid, 'ip', 'link', 'show', 'host0')).toContain(v.containerMac);
    await removeLinks([v.host]);
    expect(linkExists(v.host)).toBe(false);
  });

  it('errors carry errno and the operation', async () => {
    const r = new Rtnl();
    try {
      await r.delLink('nt-nonexistent');
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(NetlinkError);
      expect((e as NetlinkError).code).toBe('ENODEV');
      expect((e as NetlinkError).errno).toBe(19);
      expect((e as NetlinkError).operation).toBe('delete link nt-nonexistent');
    } finally {
      r.close();
    }
  });

  it('a throwing listener does not abort the process', async () => {
    const r = new Rtnl();
    const caught: unknown[] = [];
    r.on('message', () => {
      throw new Error('boom');
    }, (e) => caught.push(e));
    r.sock.addMembership('LINK');
    dummy('nt-lst0');
    await new Promise((res) => setTimeout(res, 100));
    r.close();
    expect(caught.length).toBeGreaterThan(0);
  });

  it('extra veths use the extra keys and indexes', async () => {
    const pid = await waitNetns(netnsProcess());
    const made = await createVethExtra('nt-x', pid, [{ host: 'nt-xa', container: 'xa' }, { host: 'nt-xb', container: 'xb' }]);
    cleanups.push(() => removeLinks(['nt-xa', 'nt-xb']));
    expect(made[1]!.hostMac).toBe(generateMac('nt-x', 'vethExtraHost', { idx: 1 }));
    expect(inNs(pid, 'ip', 'link', 'show', 'xb')).toContain(made[1]!.containerMac);
  });
});

describe('zones', () => {
  it('creates vz-ZONE on demand and removes it when the last member left', async () => {
    const lockDir = mkdtempSync(join(tmpdir(), 'nt-lock-'));
    cleanups.push(() => rmSync(lockDir, { recursive: true, force: true }));
    const lockPath = join(lockDir, 'zone.lck');
    const a = await waitNetns(netnsProcess());
    const b = await waitNetns(netnsProcess());
    const va = await createVeth('nt-za', a, { bridged: true });
    const vb = await createVeth('nt-zb', b, { bridged: true });
    cleanups.push(() => removeLinks([va.host, vb.host, 'vz-nt-zone']));
    expect(va.host).toBe('vb-nt-za');
    expect((await joinZone(va.host, 'nt-zone', { lockPath })).created).toBe(true);
    expect((await joinZone(vb.host, 'nt-zone', { lockPath })).created).toBe(false);
    // both containers on one segment: addresses of their own, ping across the bridge
    inNs(a, 'ip', 'addr', 'add', '198.18.7.1/24', 'dev', 'host0');
    inNs(a, 'ip', 'link', 'set', 'host0', 'up');
    inNs(b, 'ip', 'addr', 'add', '198.18.7.2/24', 'dev', 'host0');
    inNs(b, 'ip', 'link', 'set', 'host0', 'up');
    expect(inNs(b, 'busybox', 'ping', '-c1', '-W2', '198.18.7.1')).toContain('1 packets received');
    expect(await leaveZone('nt-zone', { lockPath })).toBe(false); // still populated
    await removeLinks([va.host]);
    expect(await leaveZone('nt-zone', { lockPath })).toBe(false);
    await removeLinks([vb.host]);
    expect(await leaveZone('nt-zone', { lockPath })).toBe(true);
    expect(linkExists('vz-nt-zone')).toBe(false);
  });
});

describe('macvlan, ipvlan, moved interfaces', () => {
  it('makes mv- links on a dummy parent inside the namespace', async () => {
    dummy('nt-dum0');
    const pid = await waitNetns(netnsProcess());
    expect(await createMacvlan('nt-mv', pid, ['nt-dum0'])).toEqual(['mv-nt-dum0']);
    const links = inNs(pid, 'ip', '-d', 'link');
    expect(links).toMatch(/mv-nt-dum0@if\d+/);
    expect(links).toContain(generateMac('nt-mv', 'macvlan'));
    expect(links).toContain('macvlan mode bridge');
  });

  it.skipIf(!kernelHas('ipvlan'))('makes iv- links on a dummy parent inside the namespace', async () => {
    dummy('nt-dum2');
    const pid = await waitNetns(netnsProcess());
    expect(await createIpvlan(pid, ['nt-dum2'])).toEqual(['iv-nt-dum2']);
    const links = inNs(pid, 'ip', '-d', 'link');
    expect(links).toMatch(/iv-nt-dum2@if\d+/);
    expect(links).toContain('ipvlan');
  });

  it.runIf(!kernelHas('ipvlan'))('without the ipvlan driver, the error names the operation and errno', async () => {
    dummy('nt-dum3');
    const pid = await waitNetns(netnsProcess());
    await expect(createIpvlan(pid, ['nt-dum3'])).rejects.toThrow(/create ipvlan iv-nt-dum3: E[A-Z]+/);
  });

  it('moves an interface in and back out before the namespace ends', async () => {
    dummy('nt-dum1');
    const p = netnsProcess();
    const pid = await waitNetns(p);
    await moveInterfaces(pid, ['nt-dum1']);
    expect(linkExists('nt-dum1')).toBe(false);
    expect(inNs(pid, 'ip', 'link', 'show', 'nt-dum1')).toContain('nt-dum1');
    const fd = openSync(`/proc/${pid}/ns/net`, 'r');
    try {
      p.kill('SIGKILL');
      await new Promise((r) => p.once('exit', r));
      expect(await moveInterfacesBack(fd, ['nt-dum1'])).toEqual([]);
    } finally {
      closeSync(fd);
    }
    expect(linkExists('nt-dum1')).toBe(true);
  });
});
