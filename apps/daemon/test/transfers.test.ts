/**
 * pull-raw, import-raw, import-fs, export-raw, list-transfers, cancel-transfer and show-image through nspawnctl and a
 * private nspawnd: images served over HTTP on 127.0.0.1 by this test (one URL stalls mid-body, for cancelling), and
 * hostile cases (bad checksum, bad names, qcow2, a truncated body, a symlink out of the store), each asserting
 * that the store holds nothing it should not (no image, no hidden temporary) afterwards.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { NSPAWNCTL, requireRoot, TestDaemon, waitFor } from './helpers.js';

let d: TestDaemon;
let server: Server;
let base: string;
const files = new Map<string, Buffer>();
const stalled = new Set<Socket>();

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
function rawImage(): Buffer {
  const b = Buffer.alloc(2 * 1024 * 1024);
  b.write('dm raw image', 0);
  b.fill(5, 1024 * 1024, 1024 * 1024 + 4096);
  return b;
}
const IMG = rawImage();

beforeAll(async () => {
  requireRoot();
  d = new TestDaemon();
  await d.start();
  server = createServer((req, res) => {
    if (req.url === '/stall/dm-stall.raw') {
      res.writeHead(200, { 'content-length': String(256 * 1024 * 1024) });
      res.write(Buffer.alloc(1024 * 1024, 1));
      stalled.add(req.socket);
      return;
    }
    if (req.url === '/trunc/dm-trunc.raw') {
      res.writeHead(200, { 'content-length': '100000' });
      res.write(Buffer.alloc(5000, 1), () => req.socket.destroy());
      return;
    }
    const f = files.get(req.url ?? '');
    if (!f) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-length': f.length }).end(f);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  files.set('/good/dm-pulled.raw.xz', execFileSync('xz', ['-c'], { input: IMG, maxBuffer: 1 << 26 }));
  files.set('/good/SHA256SUMS', Buffer.from(`${sha(files.get('/good/dm-pulled.raw.xz')!)} *dm-pulled.raw.xz\n`));
  files.set('/bad/dm-bad.raw', IMG);
  files.set('/bad/SHA256SUMS', Buffer.from(`${'0'.repeat(64)}  dm-bad.raw\n`));
  files.set('/q/dm-q.qcow2', Buffer.concat([Buffer.from([0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 3]), Buffer.alloc(4096)]));
});

afterAll(async () => {
  for (const s of stalled) s.destroy();
  server?.close();
  await d?.cleanup();
});

/** every entry of the store, hidden ones included */
const store = () => readdirSync(d.machines).sort();

describe('raw transfers through nspawnd', () => {
  it('pull-raw: downloads, decompresses, checks SHA256SUMS, installs NAME.raw; show-image and list-images see it', async () => {
    const r = await d.ctlAsync(['pull-raw', `${base}/good/dm-pulled.raw.xz`]);
    expect(r.stderr).toContain("Created new image 'dm-pulled'");
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^Enqueued transfer job \d+\. Press C-c to continue download in background\.$/m);
    expect(store()).toEqual(['dm-pulled.raw']);
    expect(sha(readFileSync(join(d.machines, 'dm-pulled.raw')))).toBe(sha(IMG));
    const show = (await d.ctlAsync(['show-image', 'dm-pulled'])).stdout;
    const st = statSync(join(d.machines, 'dm-pulled.raw'));
    expect(show).toContain(`Name=dm-pulled\nPath=${join(d.machines, 'dm-pulled.raw')}\nType=raw\nReadOnly=no\n`);
    expect(show).toMatch(/^ModificationTimestamp=\w{3} \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \w+$/m);
    expect(show).toContain(`Usage=${st.blocks * 512}\n`);
    expect(show).toContain(`Limit=${st.size}\n`);
    expect((await d.ctlAsync(['list-images'])).stdout).toMatch(/^dm-pulled\s+raw\s+no\s/m);
  });

  it('hostile pulls: bad checksum, bad names, qcow2, a truncated body; nothing is left', async () => {
    const bad = await d.ctlAsync(['pull-raw', `${base}/bad/dm-bad.raw`]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain(`SHA256 checksum of dm-bad.raw does not match: expected ${'0'.repeat(64)}, got ${sha(IMG)}.`);
    for (const n of ['a/b', '..', '../dm-x']) {
      const r = await d.ctlAsync(['pull-raw', `${base}/bad/dm-bad.raw`, n]);
      expect(r.status).toBe(1);
      expect(r.stderr.trim()).toBe(`Image name '${n}' is invalid.`);
    }
    expect((await d.ctlAsync(['pull-raw', 'ftp://127.0.0.1/x.raw'])).stderr.trim()).toBe("URL 'ftp://127.0.0.1/x.raw' is not valid.");
    expect((await d.ctlAsync(['pull-raw', `${base}/bad/dm-bad.raw`, '-'])).stderr.trim()).toBe("pull-raw: '-' as NAME (only the hidden download, as machinectl) is not supported; give NAME.");
    const q = await d.ctlAsync(['pull-raw', '--verify=no', `${base}/q/dm-q.qcow2`]);
    expect(q.status).toBe(1);
    expect(q.stderr.trim().split('\n').pop()).toBe(`Refusing ${base}/q/dm-q.qcow2: it is a qcow2 image, which this nspawn does not convert; convert it first (qemu-img convert -O raw).`);
    const t = await d.ctlAsync(['pull-raw', '--verify=no', `${base}/trunc/dm-trunc.raw`]);
    expect(t.status).toBe(1);
    expect(t.stderr).toMatch(/dm-trunc\.raw.*(incomplete|after 5000 of 100000 bytes)/);
    expect(store()).toEqual(['dm-pulled.raw']);
  });

  it('a pull cancelled mid-transfer (the server stalls) leaves nothing: no file, no temporary, no image, no transfer', async () => {
    const ctl = d.ctlAsync(['pull-raw', '--verify=no', `${base}/stall/dm-stall.raw`], { timeout: 60000 });
    let id = '';
    await waitFor(() => {
      const l = d.ctl(['list-transfers', '--no-legend']).stdout.trim();
      const m = /^ *(\d+) +(\d+)% pull-raw +\S+ +(\S+) *$/.exec(l);
      if (m && m[3] === `${base}/stall/dm-stall.raw` && Number(m[2]) >= 0 && store().some((n) => n.startsWith('.#import-dm-stall-'))) id = m[1]!;
      return id !== '';
    }, 20000, 100);
    const list = d.ctl(['list-transfers']).stdout;
    // machinectl's printf(): "%-*s %-*s ..." header, "%*u %*u%% %-*s ..." rows, then the count after a blank line
    expect(list).toMatch(/^ID PERCENT TYPE {5}LOCAL {1,}REMOTE *\n {0,}\d+ {1,6}\d+% pull-raw \S+ +\S+ *\n\n1 transfers listed\.\n$/);
    const c = d.ctl(['cancel-transfer', id]);
    expect(c.status, c.stderr).toBe(0);
    const r = await ctl;
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n').pop()).toBe(`Transfer of ${base}/stall/dm-stall.raw was cancelled.`);
    expect(store()).toEqual(['dm-pulled.raw']);
    expect(d.ctl(['list-transfers']).stdout).toBe('No transfers.\n');
    expect(d.ctl(['cancel-transfer', id]).stderr.trim()).toBe(`Could not cancel transfer: No transfer by id ${id}`);
    expect(d.ctl(['cancel-transfer', 'x1']).stderr.trim()).toBe('Failed to parse transfer id: x1');
  });

  it('C-c leaves the transfer running in nspawnd (as machinectl); an import from a stalled stdin is cancelled and leaves nothing', async () => {
    const pull = execa(NSPAWNCTL, ['pull-raw', '--verify=no', `${base}/stall/dm-stall.raw`, 'dm-bg'], { env: d.env, extendEnv: false, reject: false, stdin: 'ignore' });
    let err = '';
    pull.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    await waitFor(() => /Enqueued transfer job (\d+)/.test(err) && store().some((n) => n.startsWith('.#import-dm-bg-')), 20000, 100);
    const id = /Enqueued transfer job (\d+)/.exec(err)![1]!;
    pull.kill('SIGINT');
    const r = await pull;
    expect(r.exitCode).toBe(1);
    expect(err).toContain(`Continuing download in the background. Use "nspawnctl cancel-transfer ${id}" to abort transfer.`);
    expect(d.ctl(['list-transfers', '--no-legend']).stdout).toMatch(new RegExp(`^ *${id} +\\d+% pull-raw dm-bg `, 'm'));
    // a second transfer to that name is refused; clean leaves the running one's hidden file alone
    const again = await d.ctlAsync(['pull-raw', '--verify=no', `${base}/good/dm-pulled.raw.xz`, 'dm-bg']);
    expect(again.status).toBe(1);
    expect(again.stderr.trim()).toBe('Transfer for dm-bg already in progress.');
    const hidden = store().filter((n) => n.startsWith('.#import-dm-bg-'));
    expect(d.ctl(['clean']).status).toBe(0);
    expect(store().filter((n) => n.startsWith('.#import-dm-bg-'))).toEqual(hidden);
    expect(d.ctl(['cancel-transfer', id]).status).toBe(0);
    // import-raw - from a pipe that gives 1 MiB and then nothing
    const imp = execa(NSPAWNCTL, ['import-raw', '-', 'dm-pipe'], { env: d.env, extendEnv: false, reject: false, stdin: 'pipe' });
    imp.stdin!.write(Buffer.alloc(1024 * 1024, 2));
    let iid = '';
    await waitFor(() => {
      const m = /^ *(\d+) {5}n\/a import-raw dm-pipe - {5}$/m.exec(d.ctl(['list-transfers', '--no-legend']).stdout);
      if (m && store().some((n) => n.startsWith('.#import-dm-pipe-'))) iid = m[1]!;
      return iid !== '';
    }, 20000, 100);
    expect(d.ctl(['cancel-transfer', iid]).status).toBe(0);
    const ri = await imp;
    imp.stdin!.destroy();
    expect(ri.exitCode).toBe(1);
    expect(String(ri.stderr).trim().split('\n').pop()).toBe('Transfer of standard input was cancelled.');
    expect(store()).toEqual(['dm-pulled.raw']);
    expect(d.ctl(['list-transfers']).stdout).toBe('No transfers.\n');
  });

  it('import-raw from a file and from stdin; import-fs; export-raw to a file and to stdout', async () => {
    const work = join(d.base, 'work');
    mkdirSync(work, { recursive: true });
    writeFileSync(join(work, 'dm-file.raw.gz'), execFileSync('gzip', ['-c'], { input: IMG, maxBuffer: 1 << 26 }));
    let r = await d.ctlAsync(['import-raw', join(work, 'dm-file.raw.gz')]);
    expect(r.status, r.stderr).toBe(0);
    expect(sha(readFileSync(join(d.machines, 'dm-file.raw')))).toBe(sha(IMG));
    r = await d.ctlAsync(['import-raw', '-'], { input: 'x' });
    expect(r.stderr.trim()).toBe('Need an image name when importing from standard input.');
    r = await d.ctlAsync(['import-raw', '--read-only', '-', 'dm-stdin'], { input: IMG.toString('latin1') });
    expect(r.status, r.stderr).toBe(0);
    expect(sha(readFileSync(join(d.machines, 'dm-stdin.raw')))).toBe(sha(IMG));
    expect(statSync(join(d.machines, 'dm-stdin.raw')).mode & 0o777).toBe(0o444);
    expect((await d.ctlAsync(['show-image', 'dm-stdin'])).stdout).toContain('ReadOnly=yes\n');
    // import-fs: a tree with a symlink out, copied as a symlink
    mkdirSync(join(work, 'dm-tree/etc'), { recursive: true });
    writeFileSync(join(work, 'dm-tree/etc/hostname'), 'dm-tree\n');
    symlinkSync('/etc/shadow', join(work, 'dm-tree/shadow'));
    r = await d.ctlAsync(['import-fs', join(work, 'dm-tree')]);
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(join(d.machines, 'dm-tree/etc/hostname'), 'utf8')).toBe('dm-tree\n');
    expect(statSync(join(d.machines, 'dm-tree')).isDirectory()).toBe(true);
    // export-raw
    r = await d.ctlAsync(['export-raw', 'dm-file', join(work, 'out.raw.zst')]);
    expect(r.status, r.stderr).toBe(0);
    expect(sha(execFileSync('zstd', ['-dc', join(work, 'out.raw.zst')], { maxBuffer: 1 << 26 }))).toBe(sha(IMG));
    const gz = execFileSync('sh', ['-c', `"$0" export-raw --format=gzip dm-file | gzip -dc | sha256sum`, join(import.meta.dirname, '../../cli/bin/nspawnctl')], { env: d.env, maxBuffer: 1 << 26 })
      .toString()
      .split(' ')[0];
    expect(gz).toBe(sha(IMG));
    r = await d.ctlAsync(['export-raw', 'dm-tree', join(work, 'x.raw')]);
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe("Image 'dm-tree' is a directory, not a raw image: export-tar exports it.");
    expect(store()).toEqual(['dm-file.raw', 'dm-pulled.raw', 'dm-stdin.raw', 'dm-tree']);
    expect(readdirSync(work).filter((n) => n.startsWith('.#'))).toEqual([]);
  });

  it('pull-raw shows a progress bar on a terminal', async () => {
    files.set('/tty/dm-tty.raw', IMG);
    const c = await execa('script', ['-qfec', `"${NSPAWNCTL}" pull-raw --verify=no ${base}/tty/dm-tty.raw`, '/dev/null'], {
      env: d.env,
      extendEnv: false,
      stdio: ['ignore', 'pipe', 'pipe'],
      reject: false,
      stripFinalNewline: false,
    });
    expect(c.exitCode, c.stdout).toBe(0);
    expect(c.stdout).toMatch(/\r\[[#.]+\] +\d+% /);
    expect(c.stdout).toMatch(/\[#{30}\] 100% 2\.0M\/2\.0M/);
    expect(c.stdout).toContain("Created new image 'dm-tty'");
    expect(d.ctl(['remove', 'dm-tty']).status).toBe(0);
  });

  it('a raw image that is a symlink out of the store is refused by export-raw and show-image', async () => {
    const outside = join(d.base, 'outside.raw');
    writeFileSync(outside, IMG);
    symlinkSync(outside, join(d.machines, 'dm-evil.raw'));
    const before = readFileSync(outside);
    const e = await d.ctlAsync(['export-raw', 'dm-evil', join(d.base, 'evil-out.raw')]);
    expect(e.status).toBe(1);
    expect(e.stderr.trim()).toBe(`Image "dm-evil" is a symlink to ${outside}, outside the image store ${d.machines}: refusing to use it`);
    expect((await d.ctlAsync(['show-image', 'dm-evil'])).status).toBe(1);
    expect(readFileSync(outside).equals(before)).toBe(true);
    expect(readdirSync(d.base).filter((n) => n.includes('evil-out'))).toEqual([]);
    rmSync(join(d.machines, 'dm-evil.raw'));
  });

  it('stopping nspawnd cancels a running transfer and leaves nothing', async () => {
    const ctl = d.ctlAsync(['pull-raw', '--verify=no', `${base}/stall/dm-stall.raw`, 'dm-stall2'], { timeout: 60000 });
    await waitFor(() => store().some((n) => n.startsWith('.#import-dm-stall2-')), 20000, 100);
    await d.stop();
    const r = await ctl;
    expect(r.status).toBe(1);
    expect(store()).toEqual(['dm-file.raw', 'dm-pulled.raw', 'dm-stdin.raw', 'dm-tree']);
    await d.start();
  });
});
