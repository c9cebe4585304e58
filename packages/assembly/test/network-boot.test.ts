/**
 * A booted Debian whose systemd-networkd runs DHCP on host0 (its 80-container-host0.network) gets the address nspawn
 * gave the container, from nspawn's DHCP server. Root; the Debian tree comes from scripts/make-debian-tree.sh (cached).
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NSPAWN_BIN, REPO, requireRoot } from './helpers.js';

let base = '';
let tree = '';
beforeAll(() => {
  requireRoot();
  base = mkdtempSync('/var/tmp/nt-deb-');
  tree = join(base, 'nt-deb');
  execFileSync(join(REPO, 'scripts/make-debian-tree.sh'), [tree], { stdio: ['ignore', 'ignore', 'inherit'] });
  symlinkSync('/lib/systemd/system/systemd-networkd.service', join(tree, 'etc/systemd/system/multi-user.target.wants/systemd-networkd.service'));
}, 180000);
afterAll(() => {
  if (base) rmSync(base, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('DHCP in a booted OS', () => {
  it('systemd-networkd in the container gets the same address over DHCP', async () => {
    const child = spawn(process.execPath, [NSPAWN_BIN, '-q', '--console=passive', '-D', tree, '-M', 'nt-deb', '-n', '-b'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    const done = new Promise<number>((res) => child.on('exit', (c) => res(c ?? 128)));
    try {
      const hosts = () => /^(\S+)\s+nt-deb$/m.exec(readFileSync('/etc/hosts', 'utf8'))?.[1];
      let addr: string | undefined;
      let shown = '';
      for (let i = 0; i < 300 && !/dynamic/.test(shown); i++) {
        await sleep(100);
        addr = hosts();
        // the container's networkd: its network namespace is the container's
        const pids = execFileSync('ps', ['-eo', 'pid=,comm='], { encoding: 'utf8' })
          .split('\n')
          .filter((l) => l.trim().endsWith('systemd-network'))
          .map((l) => l.trim().split(/\s+/)[0]!)
          .filter((p) => existsSync(`/proc/${p}/root/etc/debian_version`));
        for (const p of pids) {
          try {
            const out = execFileSync('nsenter', ['-t', p, '-n', 'ip', '-4', 'addr', 'show', 'host0'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
            if (addr && out.includes(`inet ${addr}/`)) shown = out;
          } catch {
            /* not the one, or gone */
          }
        }
      }
      expect(addr).toBeDefined();
      expect(shown).toMatch(new RegExp(`inet ${addr!.replaceAll('.', '\\.')}/28 .*dynamic host0`));
    } finally {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 20000);
      await done;
      clearTimeout(t);
    }
    expect(readFileSync('/etc/hosts', 'utf8')).not.toMatch(/\snt-deb$/m);
    expect(existsSync('/sys/class/net/ve-nt-deb')).toBe(false);
    void err;
  }, 90000);
});
