/**
 * nspawnctl start of a raw disk image (NAME.raw in the image store), as root: nspawnd starts it with systemd-nspawn@'s
 * flags (`-U`, `--network-veth`, `-b`...) and `-i NAME.raw`, as nspawn@NAME.service's `--machine=NAME` finds it
 * (systemd 252's image_find()); the image's root is idmapped into the picked range; terminate leaves no loop device.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusybox, requireRoot, TestDaemon, waitFor } from './helpers.js';
import { httpRequest } from './web-helpers.js';

let d: TestDaemon;
let image: string;

/** loop devices backed by PATH (from /sys) */
const loopsOf = (path: string) =>
  readdirSync('/sys/block').filter((b) => {
    try {
      return readFileSync(`/sys/block/${b}/loop/backing_file`, 'utf8').trim() === path;
    } catch {
      return false;
    }
  });

beforeAll(async () => {
  requireRoot();
  d = new TestDaemon();
  // a busybox tree in an ext4 root partition of a GPT image (sfdisk, mkfs.ext4 -d), made beside the store
  const tree = join(d.base, 'dm-raw-tree');
  makeBusybox(tree);
  image = join(d.machines, 'dm-raw.raw');
  const fs = join(d.base, 'dm-raw.ext4');
  writeFileSync(image, '');
  truncateSync(image, 66 << 20);
  execFileSync('sfdisk', ['-q', image], { input: `label: gpt\nstart=2048, size=${64 * 2048}, type=${process.arch === 'arm64' ? 'B921B045-1DF0-41C3-AF44-4C6F280D3FAE' : '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709'}\n` });
  writeFileSync(fs, '');
  truncateSync(fs, 64 << 20);
  execFileSync('mkfs.ext4', ['-q', '-F', '-b', '4096', '-d', tree, fs]);
  execFileSync('dd', [`if=${fs}`, `of=${image}`, 'bs=1M', 'seek=1', 'conv=notrunc,sparse', 'status=none']);
  rmSync(fs);
  rmSync(tree, { recursive: true, force: true });
  await d.start({ NSPAWND_WEB: '127.0.0.1:0' });
});

afterAll(async () => {
  await d?.cleanup();
});

describe('a raw image in the store', () => {
  it('is offered by the web view as a machine to start (state off)', async () => {
    const r = d.ctl(['web']);
    expect(r.status, r.stderr).toBe(0);
    const u = new URL(r.stdout.trim());
    const cookie = `nspawnd-web-${u.port}=${u.searchParams.get('token')!}`;
    const list = await httpRequest(u.origin, 'GET', '/api/machines', { Cookie: cookie });
    expect(list.status).toBe(200);
    const rows = (JSON.parse(list.body) as { machines: Array<{ name: string; state: string }> }).machines;
    expect(rows.find((m) => m.name === 'dm-raw')).toMatchObject({ name: 'dm-raw', state: 'off' });
  });

  it('starts with -U (its root idmapped into the picked range), is listed, and goes without a loop device left', async () => {
    const r = d.ctl(['start', 'dm-raw']);
    expect(r.status, r.stderr).toBe(0);
    expect(d.list()).toContain('dm-raw');
    const st = JSON.parse(d.ctl(['status', 'dm-raw', '-o', 'json']).stdout) as { leader: { pid: number }; OSRelease?: string };
    const pid = st.leader.pid;
    const map = readFileSync(`/proc/${pid}/uid_map`, 'utf8').trim().split(/\s+/).map(Number);
    expect(map[0]).toBe(0);
    expect(map[1]).toBeGreaterThan(0);
    expect(map[2]).toBe(65536);
    const root = readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
      .split('\n')
      .find((l) => l.split(' ')[4] === '/');
    expect(root).toMatch(/ \/ rw,nodev,relatime,idmapped( \S+)* - ext4 \/dev\/loop\d+ /);
    expect(st.OSRelease).toContain('ID=busybox');
    expect(loopsOf(image)).toHaveLength(1);
    expect(d.ctl(['terminate', 'dm-raw']).status).toBe(0);
    await waitFor(() => !d.list().includes('dm-raw'), 10000);
    await waitFor(() => loopsOf(image).length === 0, 10000);
    expect(loopsOf(image)).toEqual([]);
  });
});
