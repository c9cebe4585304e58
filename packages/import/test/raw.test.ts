// pull-raw, import-raw, export-raw and import-fs (root): from an HTTP server of the test's own on 127.0.0.1 (or a
// raw socket server for the lies HTTP servers do not tell), each hostile case asserting that the store holds nothing
// afterwards (no image, no hidden temporary) and that nothing outside changed.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { exportRaw, importFs, importRaw, pullRaw, rawNameFromUrl } from '../src/index.js';
import { type Fixture, makeFixture, storeListing } from './fixture.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** 1 MiB with data at the start, in the middle and at the end, zeros between (holes when written sparsely) */
function rawImage(): Buffer {
  const b = Buffer.alloc(1024 * 1024);
  b.write('start of a raw image', 0);
  b.fill(7, 500 * 1024, 500 * 1024 + 10000);
  b.write('end', b.length - 3);
  return b;
}

const compress = (tool: string, data: Buffer) => execFileSync(tool, ['-c'], { input: data, maxBuffer: 1 << 26 });

describe('pullRaw from a local HTTP server', () => {
  let fx: Fixture;
  let server: Server;
  let url: string;
  const files = new Map<string, Buffer>();
  const stalls = new Set<Socket>();
  beforeAll(async () => {
    fx = makeFixture();
    server = createHttpServer((req, res) => {
      if (req.url === '/stall.raw') {
        // declares 64 MiB, sends 1 MiB, then nothing
        res.writeHead(200, { 'content-length': String(64 * 1024 * 1024) });
        res.write(Buffer.alloc(1024 * 1024, 1));
        stalls.add(req.socket);
        return;
      }
      const f = files.get(req.url ?? '');
      if (!f) {
        res.statusCode = 404;
        res.end();
      } else res.end(f);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    for (const s of stalls) s.destroy();
    server.close();
    rmSync(fx.base, { recursive: true, force: true });
  });
  const serve = (name: string, data: Buffer, sums = true) => {
    files.set(`/${name}`, data);
    if (sums) files.set('/SHA256SUMS', Buffer.from([...files].filter(([k]) => k !== '/SHA256SUMS' && !k.endsWith('.gpg')).map(([k, v]) => `${sha(v)}  ${k.slice(1)}\n`).join('')));
  };
  const clean = () => {
    for (const n of readdirSync(fx.store)) rmSync(join(fx.store, n), { force: true });
  };

  it('names from URLs as systemd strips them', () => {
    expect(rawNameFromUrl('https://h/x/fedora-40.raw.xz')).toBe('fedora-40');
    expect(rawNameFromUrl('https://h/x/disk.qcow2.gz?x=1')).toBe('disk');
    expect(rawNameFromUrl('/tmp/a.img')).toBe('a');
  });

  for (const [suffix, tool] of [['', ''], ['.gz', 'gzip'], ['.xz', 'xz'], ['.bz2', 'bzip2'], ['.zst', 'zstd']] as const) {
    it(`pulls a raw image${suffix ? ` compressed with ${tool}` : ''}, checks SHA256SUMS, writes it sparsely and atomically`, async () => {
      clean();
      const img = rawImage();
      serve(`disk${suffix.replace('.', '-')}.raw${suffix}`, tool ? compress(tool, img) : img);
      const seen: number[] = [];
      const r = await pullRaw(`${url}/disk${suffix.replace('.', '-')}.raw${suffix}`, { root: fx.store, name: 'disk', verify: 'checksum', progress: (d) => void seen.push(d) });
      expect(r).toEqual({ name: 'disk', path: join(fx.store, 'disk.raw'), size: img.length });
      expect(sha(readFileSync(r.path))).toBe(sha(img));
      expect(statSync(r.path).blocks * 512).toBeLessThan(img.length / 2);
      expect(statSync(r.path).mode & 0o777).toBe(0o644);
      expect(seen.length).toBeGreaterThan(0);
      expect(storeListing(fx.store)).toEqual(['disk']);
    });
  }

  it('a bad checksum is refused and nothing is left', async () => {
    clean();
    serve('bad.raw', rawImage());
    files.set('/SHA256SUMS', Buffer.from(`${'0'.repeat(64)}  bad.raw\n`));
    await expect(pullRaw(`${url}/bad.raw`, { root: fx.store })).rejects.toThrow(`SHA256 checksum of bad.raw does not match: expected ${'0'.repeat(64)}, got ${sha(rawImage())}.`);
    expect(storeListing(fx.store)).toEqual([]);
  });

  it('a file SHA256SUMS does not list is refused; --verify=no takes it', async () => {
    clean();
    files.set('/SHA256SUMS', Buffer.from(''));
    files.set('/unlisted.raw', rawImage());
    await expect(pullRaw(`${url}/unlisted.raw`, { root: fx.store })).rejects.toThrow(`${url}/SHA256SUMS lists no checksum for unlisted.raw.`);
    expect(storeListing(fx.store)).toEqual([]);
    await pullRaw(`${url}/unlisted.raw`, { root: fx.store, verify: 'no' });
    expect(storeListing(fx.store)).toEqual(['unlisted']);
  });

  it('qcow2 is refused by its magic, compressed or not', async () => {
    clean();
    const q = Buffer.concat([Buffer.from([0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 3]), Buffer.alloc(4096)]);
    serve('vm.qcow2', q);
    serve('vm2.qcow2.gz', gzipSync(q));
    serve('vm3.qcow2.xz', compress('xz', q));
    for (const f of ['vm.qcow2', 'vm2.qcow2.gz', 'vm3.qcow2.xz'])
      await expect(pullRaw(`${url}/${f}`, { root: fx.store })).rejects.toThrow(`Refusing ${url}/${f}: it is a qcow2 image, which this nspawn does not convert; convert it first (qemu-img convert -O raw).`);
    expect(storeListing(fx.store)).toEqual([]);
  });

  it('names with / or .. and existing images are refused before anything is fetched', async () => {
    clean();
    serve('x.raw', rawImage());
    for (const n of ['a/b', '..', '../x', '.'])
      await expect(pullRaw(`${url}/x.raw`, { root: fx.store, name: n })).rejects.toThrow(`Cannot use '${n}' (from ${url}/x.raw) as an image name; give NAME.`);
    await pullRaw(`${url}/x.raw`, { root: fx.store });
    await expect(pullRaw(`${url}/x.raw`, { root: fx.store })).rejects.toThrow(`Image 'x' already exists in ${fx.store}: not replacing it.`);
    expect(storeListing(fx.store)).toEqual(['x']);
  });

  it('a cancelled pull (the server stalls) leaves nothing behind', async () => {
    clean();
    const ac = new AbortController();
    let got = 0;
    const p = pullRaw(`${url}/stall.raw`, { root: fx.store, verify: 'no', signal: ac.signal, progress: (d) => void (got = d) });
    for (let i = 0; i < 100 && got < 1024 * 1024; i++) await new Promise((r) => setTimeout(r, 50));
    expect(got).toBe(1024 * 1024);
    // mid-transfer: the hidden file is there
    expect(readdirSync(fx.store).filter((n) => n.startsWith('.#import-stall-'))).toHaveLength(1);
    ac.abort();
    await expect(p).rejects.toThrow(`Transfer of ${url}/stall.raw was cancelled.`);
    expect(storeListing(fx.store)).toEqual([]);
  });

  it('a signature is checked against the keyring (--verify=signature)', async () => {
    clean();
    const home = join(fx.work, 'gnupg');
    mkdirSync(home, { mode: 0o700 });
    const gpg = (...a: string[]) => execFileSync('gpg', ['--homedir', home, '--batch', '--pinentry-mode', 'loopback', '--passphrase', '', ...a], { stdio: ['ignore', 'pipe', 'pipe'] });
    // key generation starts a gpg-agent for HOME: stopped at the end, whatever happens
    onTestFinished(() => void execFileSync('gpgconf', ['--homedir', home, '--kill', 'all'], { stdio: 'ignore' }));
    gpg('--quick-gen-key', 'nspawn test <test@example.invalid>', 'ed25519', 'sign', 'never');
    const keyring = join(fx.work, 'pubring.gpg');
    writeFileSync(keyring, gpg('--export'));
    serve('signed.raw', rawImage());
    const sums = files.get('/SHA256SUMS')!;
    writeFileSync(join(fx.work, 'SHA256SUMS'), sums);
    gpg('--detach-sign', '-o', join(fx.work, 'SHA256SUMS.gpg'), join(fx.work, 'SHA256SUMS'));
    files.set('/SHA256SUMS.gpg', readFileSync(join(fx.work, 'SHA256SUMS.gpg')));
    const lines: string[] = [];
    await pullRaw(`${url}/signed.raw`, { root: fx.store, verify: 'signature', keyring, log: (l) => void lines.push(l) });
    expect(lines).toContain(`Signature of ${url}/SHA256SUMS is good (keyring ${keyring}).`);
    // SHA256SUMS changed after signing: refused
    files.set('/SHA256SUMS', Buffer.concat([sums, Buffer.from(`${'1'.repeat(64)}  other.raw\n`)]));
    await expect(pullRaw(`${url}/signed.raw`, { root: fx.store, name: 'signed2', verify: 'signature', keyring })).rejects.toThrow(/^Signature verification of .*SHA256SUMS failed/);
    // no keyring: refused clearly
    await expect(pullRaw(`${url}/signed.raw`, { root: fx.store, name: 'signed3', verify: 'signature', keyring: join(fx.work, 'none.gpg') })).rejects.toThrow(
      `Cannot verify the signature of ${url}/SHA256SUMS: no keyring (${join(fx.work, 'none.gpg')}); use --verify=checksum or --verify=no.`,
    );
    expect(storeListing(fx.store)).toEqual(['signed']);
  });
});

describe('pullRaw against servers that lie', () => {
  let fx: Fixture;
  let server: NetServer;
  let url: string;
  let reply: (s: Socket) => void = () => {};
  const sockets = new Set<Socket>();
  beforeAll(async () => {
    fx = makeFixture();
    server = createNetServer((s) => {
      sockets.add(s);
      s.on('error', () => {});
      s.once('data', () => reply(s));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    for (const s of sockets) s.destroy();
    server.close();
    rmSync(fx.base, { recursive: true, force: true });
  });
  const head = (len: number | string) => `HTTP/1.1 200 OK\r\nContent-Length: ${len}\r\nConnection: close\r\n\r\n`;

  it('a truncated body is refused and nothing is left', async () => {
    reply = (s) => s.end(Buffer.concat([Buffer.from(head(100000)), Buffer.alloc(5000, 1)]));
    await expect(pullRaw(`${url}/t.raw`, { root: fx.store, verify: 'no' })).rejects.toThrow(/^(Download of .*\/t\.raw is incomplete \(5000 of 100000 bytes\)\.|Failed to download .*\/t\.raw: .* \(after 5000 of 100000 bytes\))$/);
    expect(storeListing(fx.store)).toEqual([]);
  });

  it('a huge declared size is refused before a byte is written', async () => {
    const before = fx.snapshot();
    reply = (s) => s.write(Buffer.concat([Buffer.from(head(10 ** 15)), Buffer.alloc(4096, 1)]));
    await expect(pullRaw(`${url}/huge.raw`, { root: fx.store, verify: 'no' })).rejects.toThrow(/^Refusing .*\/huge\.raw: the server declares 1000000000000000 bytes, more than the \d+ bytes free in the image store\.$/);
    expect(storeListing(fx.store)).toEqual([]);
    expect(fx.snapshot()).toBe(before);
  });

  it('more bytes than declared: only the declared ones are taken, and the checksum refuses the result', async () => {
    const img = rawImage();
    const extra = Buffer.alloc(8192, 9);
    reply = (s) => {
      if (!s.listenerCount('data')) s.on('data', () => {});
      s.end(Buffer.concat([Buffer.from(head(img.length)), img, extra]));
    };
    // with no verification the image is the declared bytes, never the extra ones
    const r = await pullRaw(`${url}/more.raw`, { root: fx.store, verify: 'no' });
    expect(statSync(r.path).size).toBe(img.length);
    expect(sha(readFileSync(r.path))).toBe(sha(img));
    rmSync(r.path);
    expect(storeListing(fx.store)).toEqual([]);
  });

  it('a chunked body with no declared size is cut at the free space (here: a limit) and nothing is left', async () => {
    reply = (s) => {
      s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n');
      const chunk = Buffer.alloc(65536, 3);
      let n = 0;
      const more = () => {
        if (s.destroyed || n++ > 2000) return s.end('0\r\n\r\n');
        s.write(`${chunk.length.toString(16)}\r\n`);
        s.write(chunk);
        s.write('\r\n', () => setImmediate(more));
      };
      more();
    };
    const { openDownload } = await import('../src/index.js');
    const d = await openDownload(`${url}/chunked.raw`, { limit: 1024 * 1024 });
    let err: unknown;
    try {
      for await (const _ of d.chunks) void _;
    } catch (e) {
      err = e;
    }
    expect((err as Error).message).toBe(`Refusing ${url}/chunked.raw: the download exceeds the 1048576 bytes free in the image store.`);
  });
});

describe('importRaw, exportRaw, importFs', () => {
  let fx: Fixture;
  beforeAll(() => {
    fx = makeFixture();
  });
  afterAll(() => rmSync(fx.base, { recursive: true, force: true }));

  it('import-raw of plain and compressed files; export-raw round trips every format', async () => {
    const img = rawImage();
    writeFileSync(join(fx.work, 'a.raw'), img);
    writeFileSync(join(fx.work, 'b.raw.xz'), compress('xz', img));
    const a = await importRaw(join(fx.work, 'a.raw'), { root: fx.store });
    const b = await importRaw(join(fx.work, 'b.raw.xz'), { root: fx.store, readOnly: true });
    expect([a.name, b.name]).toEqual(['a', 'b']);
    expect(sha(readFileSync(b.path))).toBe(sha(img));
    expect(statSync(b.path).mode & 0o777).toBe(0o444);
    for (const [file, tool] of [['out.raw', ''], ['out.raw.gz', 'gzip'], ['out.raw.xz', 'xz'], ['out.raw.bz2', 'bzip2'], ['out.raw.zst', 'zstd']] as const) {
      await exportRaw(a.path, join(fx.work, file));
      const back = tool ? execFileSync(tool, ['-dc'], { input: readFileSync(join(fx.work, file)), maxBuffer: 1 << 26 }) : readFileSync(join(fx.work, file));
      expect(sha(back)).toBe(sha(img));
    }
    // --format= wins over the suffix
    await exportRaw(a.path, join(fx.work, 'fmt.raw'), { format: 'gzip' });
    expect(readFileSync(join(fx.work, 'fmt.raw')).subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
    expect(readdirSync(fx.work).filter((n) => n.startsWith('.#'))).toEqual([]);
    expect(storeListing(fx.store)).toEqual(['a', 'b']);
  });

  it('export-raw refuses a symlink and a directory; the target file is replaced, never followed', async () => {
    symlinkSync(fx.victim, join(fx.store, 'evil.raw'));
    const before = fx.snapshot();
    await expect(exportRaw(join(fx.store, 'evil.raw'), join(fx.work, 'x.raw'))).rejects.toThrow(`Refusing to export ${join(fx.store, 'evil.raw')}: it is a symlink.`);
    await expect(exportRaw(fx.work, join(fx.work, 'x.raw'))).rejects.toThrow(`Refusing to export ${fx.work}: not a regular file (only raw images export as raw).`);
    symlinkSync(fx.victim, join(fx.work, 'link.raw'));
    await exportRaw(join(fx.store, 'a.raw'), join(fx.work, 'link.raw'));
    expect(lstatSync(join(fx.work, 'link.raw')).isFile()).toBe(true);
    expect(fx.snapshot()).toBe(before);
    rmSync(join(fx.store, 'evil.raw'));
  });

  it('the free-space cap counts data written, not holes: a sparse image larger than the cap passes, data past it does not', async () => {
    const { openSync, closeSync } = await import('node:fs');
    const { writeSparse } = await import('../src/index.js');
    async function* gen(zeros: number, data: number): AsyncGenerator<Buffer> {
      for (let i = 0; i < zeros; i++) yield Buffer.alloc(1024 * 1024);
      for (let i = 0; i < data; i++) yield Buffer.alloc(1024 * 1024, 1);
    }
    const f = join(fx.work, 'sparse.img');
    let fd = openSync(f, 'w');
    try {
      expect(await writeSparse(fd, gen(64, 1), 'sparse.img', 2 * 1024 * 1024)).toBe(65 * 1024 * 1024);
    } finally {
      closeSync(fd);
    }
    expect(statSync(f).blocks * 512).toBeLessThanOrEqual(2 * 1024 * 1024);
    fd = openSync(f, 'w');
    try {
      await expect(writeSparse(fd, gen(0, 3), 'sparse.img', 2 * 1024 * 1024)).rejects.toThrow("Refusing sparse.img: the image's data grows past the 2097152 bytes free in the image store.");
    } finally {
      closeSync(fd);
      rmSync(f);
    }
  });

  it('import-raw refuses qcow2, a directory, and bad names; nothing is left', async () => {
    writeFileSync(join(fx.work, 'q.qcow2'), Buffer.concat([Buffer.from([0x51, 0x46, 0x49, 0xfb]), Buffer.alloc(100)]));
    await expect(importRaw(join(fx.work, 'q.qcow2'), { root: fx.store })).rejects.toThrow('is a qcow2 image');
    await expect(importRaw(fx.work, { root: fx.store, name: 'd' })).rejects.toThrow(`${fx.work} is a directory: import-fs imports directories.`);
    await expect(importRaw(join(fx.work, 'a.raw'), { root: fx.store, name: '../a' })).rejects.toThrow(`Cannot use '../a' (from ${join(fx.work, 'a.raw')}) as an image name; give NAME.`);
    expect(storeListing(fx.store)).toEqual(['a', 'b']);
  });

  it('import-fs copies a tree: symlinks stay symlinks (never followed), hard links, modes, owners', async () => {
    const src = join(fx.work, 'tree');
    mkdirSync(join(src, 'etc'), { recursive: true });
    writeFileSync(join(src, 'etc/hostname'), 'tree\n');
    linkSync(join(src, 'etc/hostname'), join(src, 'etc/hard'));
    symlinkSync(fx.victim, join(src, 'out'));
    symlinkSync('../../../..', join(src, 'etc/up'));
    const before = fx.snapshot();
    const r = await importFs(src, { root: fx.store });
    expect(r.name).toBe('tree');
    expect(readlinkSync(join(r.path, 'out'))).toBe(fx.victim);
    expect(readlinkSync(join(r.path, 'etc/up'))).toBe('../../../..');
    expect(statSync(join(r.path, 'etc/hard')).ino).toBe(statSync(join(r.path, 'etc/hostname')).ino);
    expect(fx.snapshot()).toBe(before);
    await expect(importFs(src, { root: fx.store })).rejects.toThrow(`Image 'tree' already exists in ${fx.store}: not replacing it.`);
    await expect(importFs(fx.base, { root: fx.store, name: 'all' })).rejects.toThrow(`Refusing to import ${fx.base}: it contains the image store ${fx.store}.`);
    await expect(importFs(join(fx.work, 'a.raw'), { root: fx.store })).rejects.toThrow(`Cannot import ${join(fx.work, 'a.raw')}: not a directory`);
    expect(storeListing(fx.store)).toEqual(['a', 'b', 'tree']);
    expect(existsSync(join(fx.store, 'tree'))).toBe(true);
  });

  it('a cancelled import-fs leaves nothing', async () => {
    const ac = new AbortController();
    ac.abort();
    await expect(importFs(join(fx.work, 'tree'), { root: fx.store, name: 'tree2', signal: ac.signal })).rejects.toThrow(`Transfer of ${join(fx.work, 'tree')} was cancelled.`);
    expect(storeListing(fx.store)).toEqual(['a', 'b', 'tree']);
  });
});
