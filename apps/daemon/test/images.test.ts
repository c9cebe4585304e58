/**
 * The image verbs through nspawnd (io.systemd.MachineImage on the @nspawn/btrfs store), and pull-tar / import-tar /
 * export-tar: good archives served over HTTP on 127.0.0.1, and hostile ones (path traversal, symlink tricks,
 * checksum mismatch) that must leave nothing behind.
 */
import { createHash } from 'node:crypto';
import { execa, execaSync } from 'execa';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTar } from '../../../packages/import/src/test-build-tar.js';
import { makeBusybox, NSPAWNCTL, requireRoot, TestDaemon, waitFor } from './helpers.js';

let d: TestDaemon;
let server: Server;
let base: string;
const files = new Map<string, Buffer>();

beforeAll(async () => {
  requireRoot();
  d = new TestDaemon();
  makeBusybox(join(d.machines, 'dm-img'));
  await d.start();
  server = createServer((req, res) => {
    const f = files.get(req.url ?? '');
    if (!f) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-length': f.length }).end(f);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server?.close();
  await d?.cleanup();
});

const images = () => readdirSync(d.machines).sort();
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const serve = (dir: string, name: string, data: Buffer, sums?: string) => {
  files.set(`/${dir}/${name}`, data);
  files.set(`/${dir}/SHA256SUMS`, Buffer.from(sums ?? `${sha(data)} *${name}\n`));
};

describe('image verbs', () => {
  it('list-images, image-status as table and JSON; clear error for an unknown image', () => {
    const t = d.ctl(['list-images']);
    expect(t.status, t.stderr).toBe(0);
    expect(t.stdout).toMatch(/^NAME\s+TYPE\s+RO\s+USAGE\s+CREATED\s+MODIFIED$/m);
    expect(t.stdout).toMatch(/^dm-img\s+directory\s+no\s/m);
    expect(t.stdout).toContain('1 images listed.');
    expect(d.ctl(['list-images', '--no-legend']).stdout.trim().split('\n')).toHaveLength(1);
    const j = JSON.parse(d.ctl(['list-images', '-o', 'json']).stdout) as Array<Record<string, unknown>>;
    expect(j[0]).toMatchObject({ name: 'dm-img', type: 'directory', ro: false });
    const s = JSON.parse(d.ctl(['image-status', 'dm-img', '-o', 'json']).stdout) as Record<string, unknown>;
    expect(s).toMatchObject({ name: 'dm-img', path: join(d.machines, 'dm-img'), readOnly: false });
    expect(s.OSRelease).toContain('ID=busybox');
    expect(d.ctl(['image-status', 'dm-img']).stdout).toMatch(/OS: BusyBox/);
    for (const v of [['image-status', 'dm-none'], ['clone', 'dm-none', 'dm-x'], ['remove', 'dm-none'], ['rename', 'dm-none', 'dm-x']]) {
      const r = d.ctl(v);
      expect(r.status).toBe(1);
      expect(r.stderr.trim()).toBe("No image 'dm-none' known.");
    }
  });

  it('clone, rename, read-only, remove; a running image is not renamed or removed', async () => {
    expect(d.ctl(['clone', 'dm-img', 'dm-img2']).status).toBe(0);
    expect(readFileSync(join(d.machines, 'dm-img2/usr/lib/os-release'), 'utf8')).toContain('busybox');
    expect(d.ctl(['clone', 'dm-img', 'dm-img2']).stderr).toMatch(/already exists/);
    expect(d.ctl(['rename', 'dm-img2', 'dm-img3']).status).toBe(0);
    expect(images()).toEqual(['dm-img', 'dm-img3']);
    expect(d.ctl(['read-only', 'dm-img3']).status).toBe(0);
    expect(JSON.parse(d.ctl(['image-status', 'dm-img3', '-o', 'json']).stdout).readOnly).toBe(true);
    expect(() => writeFileSync(join(d.machines, 'dm-img3/new'), 'x')).toThrow();
    expect(d.ctl(['read-only', 'dm-img3', 'no']).status).toBe(0);
    expect(JSON.parse(d.ctl(['image-status', 'dm-img3', '-o', 'json']).stdout).readOnly).toBe(false);
    expect(d.ctl(['start', 'dm-img3']).status).toBe(0);
    expect(d.ctl(['remove', 'dm-img3']).stderr).toMatch(/in use/);
    expect(d.ctl(['rename', 'dm-img3', 'dm-img4']).stderr).toMatch(/in use/);
    expect(d.ctl(['terminate', 'dm-img3']).status).toBe(0);
    await waitFor(() => !d.list().includes('dm-img3'));
    expect(d.ctl(['remove', 'dm-img3']).status).toBe(0);
    expect(images()).toEqual(['dm-img']);
    expect(d.ctl(['set-limit', 'dm-img', '1G']).stderr).toMatch(/only subvolume images have a size limit/);
    expect(d.ctl(['set-limit', 'dm-img', 'lots']).stderr).toMatch(/Failed to parse size/);
  });

  it('clean removes hidden images, --all every unused one', () => {
    execaSync('cp', ['-a', join(d.machines, 'dm-img'), join(d.machines, '.dm-hidden')]);
    expect(d.ctl(['list-images', '--no-legend']).stdout).not.toContain('.dm-hidden');
    expect(d.ctl(['list-images', '--no-legend', '-a']).stdout).toContain('.dm-hidden');
    const r = d.ctl(['clean']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain("Removed image '.dm-hidden'.");
    expect(images()).toEqual(['dm-img']);
  });

  it('export-tar and import-tar round-trip an image; an existing name is never replaced', () => {
    const f = join(d.base, 'dm-img.tar.gz');
    expect(d.ctl(['export-tar', 'dm-img', f]).status).toBe(0);
    expect(statSync(f).size).toBeGreaterThan(1000);
    expect(d.ctl(['import-tar', f, 'dm-imported']).status).toBe(0);
    expect(readFileSync(join(d.machines, 'dm-imported/etc/passwd'), 'utf8')).toContain('root:x:0:0');
    const again = d.ctl(['import-tar', f, 'dm-imported']);
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/already exists/);
    expect(d.ctl(['remove', 'dm-imported']).status).toBe(0);
  });

  it('nspawnd killed with -9 during a clone loses no image', async () => {
    const cloning = d.ctlAsync(['clone', 'dm-img', 'dm-k9clone']);
    await new Promise((r) => setTimeout(r, 150));
    await d.stop('SIGKILL');
    await cloning;
    await d.start();
    expect(d.ctl(['image-status', 'dm-img']).status).toBe(0);
    expect(readFileSync(join(d.machines, 'dm-img/etc/passwd'), 'utf8')).toContain('root:x:0:0');
    // a clone that did not finish may remain; it can be removed like any image
    if (existsSync(join(d.machines, 'dm-k9clone'))) expect(d.ctl(['remove', 'dm-k9clone']).status).toBe(0);
    expect(images()).toEqual(['dm-img']);
  });
});

describe('pull-tar', () => {
  it('downloads over HTTP, verifies SHA256SUMS, extracts with owners kept', async () => {
    const src = join(d.base, 'src');
    mkdirSync(src);
    execaSync('cp', ['-a', `${join(d.machines, 'dm-img')}/.`, src]);
    execaSync('sh', ['-c', `chown 1234:4321 ${src}/etc/passwd && chmod 4711 ${src}/bin/busybox`]);
    await execa('tar', ['--numeric-owner', '-C', src, '-czf', join(d.base, 'good.tar.gz'), '.']);
    serve('good', 'dm-pulled.tar.gz', readFileSync(join(d.base, 'good.tar.gz')));
    const r = await d.ctlAsync(['pull-tar', `${base}/good/dm-pulled.tar.gz`]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain('SHA256 checksum of dm-pulled.tar.gz is correct.');
    const st = statSync(join(d.machines, 'dm-pulled/etc/passwd'));
    expect([st.uid, st.gid]).toEqual([1234, 4321]);
    expect(statSync(join(d.machines, 'dm-pulled/bin/busybox')).mode & 0o7777).toBe(0o4711);
    // it is an image like any other: it boots
    expect(d.ctl(['start', 'dm-pulled']).status).toBe(0);
    expect(d.ctl(['shell', 'dm-pulled', '/bin/cat', '/etc/os-release']).stdout).toContain('busybox');
    expect(d.ctl(['terminate', 'dm-pulled']).status).toBe(0);
    // pulled again under the same name: refused, the image untouched
    const again = await d.ctlAsync(['pull-tar', `${base}/good/dm-pulled.tar.gz`]);
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/already exists/);
    // with another name, and --verify=no where there are no sums
    files.delete('/good/SHA256SUMS');
    expect((await d.ctlAsync(['pull-tar', `${base}/good/dm-pulled.tar.gz`, 'dm-pulled2'])).stderr).toMatch(/SHA256SUMS/);
    const nov = await d.ctlAsync(['pull-tar', '--verify=no', `${base}/good/dm-pulled.tar.gz`, 'dm-pulled2']);
    expect(nov.status, nov.stderr).toBe(0);
    await waitFor(() => !d.list().includes('dm-pulled'));
    expect(d.ctl(['remove', 'dm-pulled', 'dm-pulled2']).status).toBe(0);
  });

  it('downloads over HTTPS too', async () => {
    const key = join(d.base, 'tls.key');
    const cert = join(d.base, 'tls.crt');
    execaSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const data = readFileSync(join(d.base, 'good.tar.gz'));
    const tls = createHttpsServer({ key: readFileSync(key), cert: readFileSync(cert) }, (req, res) => {
      if (req.url === '/s/dm-https.tar.gz') res.writeHead(200, { 'content-length': data.length }).end(data);
      else if (req.url === '/s/SHA256SUMS') res.end(`${sha(data)}  dm-https.tar.gz\n`);
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => tls.listen(0, '127.0.0.1', () => r()));
    try {
      const url = `https://127.0.0.1:${(tls.address() as AddressInfo).port}/s/dm-https.tar.gz`;
      // an unknown certificate is refused
      const untrusted = await d.ctlAsync(['pull-tar', url]);
      expect(untrusted.status).toBe(1);
      expect(untrusted.stderr).toMatch(/certificate/i);
      const r = await d.ctlAsync(['pull-tar', url], { env: { NODE_EXTRA_CA_CERTS: cert } });
      expect(r.status, r.stderr).toBe(0);
      expect(existsSync(join(d.machines, 'dm-https/bin/busybox'))).toBe(true);
      expect(d.ctl(['remove', 'dm-https']).status).toBe(0);
    } finally {
      tls.close();
    }
  });

  it('shows a progress bar on a terminal', async () => {
    const data = readFileSync(join(d.base, 'good.tar.gz'));
    serve('tty', 'dm-tty.tar.gz', data);
    const c = await execa('script', ['-qfec', `"${NSPAWNCTL}" pull-tar ${base}/tty/dm-tty.tar.gz`, '/dev/null'], {
      env: d.env,
      extendEnv: false,
      stdio: ['ignore', 'pipe', 'pipe'],
      reject: false,
      stripFinalNewline: false,
    });
    const out = c.stdout;
    const code = c.exitCode;
    expect(code, out).toBe(0);
    expect(out).toMatch(/\[#+\] 100% /);
    expect(out).toContain("Created new image 'dm-tty'");
    expect(d.ctl(['remove', 'dm-tty']).status).toBe(0);
  });

  const hostile: Array<[string, Parameters<typeof buildTar>[0], RegExp]> = [
    ['absolute path', [{ name: 'etc/', type: '5' }, { name: '/tmp/dm-evil-abs', data: 'x' }], /absolute path/],
    ['.. traversal', [{ name: 'etc/', type: '5' }, { name: 'etc/../../dm-evil-dotdot', data: 'x' }], /'\.\.'/],
    ['write through a symlink', [{ name: 'lnk', type: '2', linkname: '/tmp' }, { name: 'lnk/dm-evil-link', data: 'x' }], /through the symlink/],
    ['hard link out', [{ name: 'h', type: '1', linkname: 'etc/shadow' }], /not a file extracted before/],
  ];
  for (const [what, members, msg] of hostile) {
    it(`refuses an archive with ${what} and leaves nothing`, async () => {
      const before = readdirSync(d.machines).sort();
      const tar = buildTar(members);
      serve('evil', 'dm-evil.tar', tar);
      const r = await d.ctlAsync(['pull-tar', `${base}/evil/dm-evil.tar`]);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(msg);
      expect(readdirSync(d.machines).sort()).toEqual(before); // no image, no temporary left
      for (const p of ['/tmp/dm-evil-abs', '/tmp/dm-evil-link', join(d.machines, '..', 'dm-evil-dotdot')]) expect(existsSync(p)).toBe(false);
    });
  }

  it('refuses a download whose checksum does not match', async () => {
    const tar = buildTar([{ name: 'etc/', type: '5' }, { name: 'etc/os-release', data: 'ID=x\n' }]);
    serve('bad', 'dm-badsum.tar', tar, `${'0'.repeat(64)} *dm-badsum.tar\n`);
    const r = await d.ctlAsync(['pull-tar', `${base}/bad/dm-badsum.tar`]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/checksum of dm-badsum.tar does not match/);
    expect(existsSync(join(d.machines, 'dm-badsum'))).toBe(false);
    expect(readdirSync(d.machines).filter((f) => f.startsWith('.tar-'))).toEqual([]);
    const missing = await d.ctlAsync(['pull-tar', `${base}/nothing/here.tar`]);
    expect(missing.stderr).toMatch(/HTTP 404/);
  });
});
