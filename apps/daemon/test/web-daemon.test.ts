/**
 * nspawnd --web as a daemon, as root: nothing of the view is loaded without --web; the options refused in one line
 * (an address off loopback without TLS, one in use) leave nothing behind; TLS with a given certificate; 200 open
 * event streams cost little and the varlink socket answers meanwhile, and the bound holds; a huge console log is
 * tailed, not read.
 */
import { execaSync } from 'execa';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, truncateSync, writeSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { createServer, request, type ClientRequest } from 'node:http';
import { join } from 'node:path';
import { varlinkCall } from '@nspawn/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusybox, NSPAWND, requireRoot, TestDaemon } from './helpers.js';
import { httpRequest } from './web-helpers.js';

let d: TestDaemon;
let base = '';
let cookie = '';

const rssKb = (pid: number) => Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);

function access(t: TestDaemon): { base: string; cookie: string; token: string } {
  const r = t.ctl(['web']);
  expect(r.status, r.stderr).toBe(0);
  const u = new URL(r.stdout.trim());
  const token = u.searchParams.get('token')!;
  return { base: u.origin, token, cookie: `${u.protocol === 'https:' ? '__Host-' : ''}nspawnd-web-${u.port}=${token}` };
}

beforeAll(async () => {
  requireRoot();
  d = new TestDaemon('dm-web-');
  makeBusybox(join(d.machines, 'dm-web-load'));
  mkdirSync(join(d.machines, 'dm-web-big'));
});

afterAll(async () => {
  await d?.cleanup();
});

describe('without --web', () => {
  it('loads none of the view and serves nothing; nspawnctl web says so', async () => {
    await d.start({ NODE_DEBUG: 'module,esm' });
    try {
      expect(d.output).toContain('nspawnd.cjs'); // NODE_DEBUG lists what is loaded (the TLS test below sees the view's)
      expect(d.output).not.toContain('nspawnd-web');
      expect(existsSync(join(d.base, 'run/web-access.json'))).toBe(false);
      const r = d.ctl(['web']);
      expect(r.status).toBe(1);
      expect(r.stderr).toBe('nspawnd does not serve the web view: start it with --web=ADDR:PORT (or NSPAWND_WEB=ADDR:PORT).\n');
    } finally {
      await d.stop();
    }
    expect(d.ctl(['web']).stderr).toMatch(/^nspawnd is not running \(no socket at .*\)\.\n$/);
  });
});

describe('refused options', () => {
  const run = (args: string[], env: NodeJS.ProcessEnv = {}) => {
    const r = execaSync(process.execPath, [NSPAWND, ...args], { env: { ...d.env, ...env }, extendEnv: false, timeout: 20000, reject: false, stripFinalNewline: false });
    return { status: r.exitCode ?? null, stdout: r.stdout, stderr: r.stderr };
  };

  it('an address off loopback without TLS, a name, a bad port: one line, exit 1, nothing left', () => {
    for (const [args, env, line] of [
      [['--web=0.0.0.0:8484'], {}, 'nspawnd: --web=0.0.0.0:8484: 0.0.0.0 is not a loopback address: serving the web view there needs TLS (--web-cert=FILE --web-key=FILE)\n'],
      [[], { NSPAWND_WEB: '[::]:8484' }, 'nspawnd: NSPAWND_WEB=[::]:8484: :: is not a loopback address: serving the web view there needs TLS (--web-cert=FILE --web-key=FILE)\n'],
      [['--web', 'example.com:80'], {}, "nspawnd: --web=example.com:80: 'example.com' is not an IP address (give ADDR:PORT, e.g. 127.0.0.1:8484)\n"],
      [['--web=127.0.0.1:99999'], {}, "nspawnd: --web=127.0.0.1:99999: '99999' is not a port number (0-65535)\n"],
      [['--web-cert=/x.pem'], {}, 'nspawnd: --web-cert needs --web=ADDR:PORT\n'],
      [['--web=0.0.0.0:1', '--web-cert=/nonexistent.pem', '--web-key=/nonexistent.key'], {}, 'nspawnd: --web-cert=/nonexistent.pem: No such file\n'],
    ] as const) {
      const r = run([...args], env);
      expect(r.stderr, args.join(' ')).toBe(line);
      expect(r.status).toBe(1);
    }
    expect(readdirSync(join(d.base, 'run')).filter((f) => f !== 'machines')).toEqual([]);
  });

  it('an address in use: one line, and the daemon gives back its sockets', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
    const port = (taken.address() as { port: number }).port;
    try {
      const r = run([`--web=127.0.0.1:${port}`]);
      expect(r.stderr).toBe(`nspawnd: --web=127.0.0.1:${port}: the address is in use\n`);
      expect(r.status).toBe(1);
      expect(readdirSync(join(d.base, 'run')).filter((f) => f !== 'machines')).toEqual([]);
    } finally {
      taken.close();
    }
  });
});

describe('TLS', () => {
  it('serves https with the given certificate; the cookie is Secure and __Host-', async () => {
    const dir = join(d.base, 'tls');
    mkdirSync(dir);
    execaSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    // the options through the environment, TLS on loopback
    await d.start({ NSPAWND_WEB: '127.0.0.1:0', NSPAWND_WEB_CERT: join(dir, 'cert.pem'), NSPAWND_WEB_KEY: join(dir, 'key.pem'), NODE_DEBUG: 'module,esm' });
    try {
      // with --web the view's bundle is loaded (what the test without it does not see)
      expect(d.output).toMatch(/nspawnd-web\.cjs/);
      const a = access(d);
      expect(a.base).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const get = (path: string, headers: Record<string, string> = {}) =>
        new Promise<{ status: number; cookie?: string[]; body: string }>((resolve, reject) => {
          const u = new URL(a.base);
          const r = httpsRequest({ host: u.hostname, port: u.port, path, headers, ca: readFileSync(join(dir, 'cert.pem')), servername: 'localhost', checkServerIdentity: () => undefined }, (res) => {
            let body = '';
            res.on('data', (x: Buffer) => (body += x.toString()));
            res.on('end', () => resolve({ status: res.statusCode!, cookie: res.headers['set-cookie'], body }));
          });
          r.on('error', reject);
          r.end();
        });
      expect((await get('/')).status).toBe(401);
      const swap = await get(`/?token=${a.token}`);
      expect(swap.status).toBe(200);
      expect(swap.cookie).toEqual([`${a.cookie}; Path=/; HttpOnly; SameSite=Strict; Secure`]);
      expect((await get('/api/machines', { Cookie: a.cookie })).status).toBe(200);
      // plain HTTP on the TLS port gets nothing
      await expect(httpRequest(a.base.replace('https', 'http'), 'GET', '/')).rejects.toThrow();
    } finally {
      await d.stop();
    }
  });
});

describe('load and bad input', () => {
  beforeAll(async () => {
    await d.start({ NSPAWND_WEB: '127.0.0.1:0' });
    ({ base, cookie } = access(d));
    expect(d.ctl(['start', 'dm-web-load']).status).toBe(0);
  });
  afterAll(async () => {
    d.ctl(['terminate', 'dm-web-load']);
    await d.stop();
  });

  /** Opens an event stream; resolves once its first console event came. */
  function openStream(name = 'dm-web-load'): Promise<{ req: ClientRequest; status: number; first: string }> {
    const u = new URL(base);
    return new Promise((resolve, reject) => {
      const req = request({ host: u.hostname, port: u.port, path: `/api/machines/${name}/events`, headers: { Cookie: cookie }, agent: false }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        if (res.statusCode !== 200) {
          res.on('data', (x: string) => (text += x));
          res.on('end', () => resolve({ req, status: res.statusCode!, first: text }));
          return;
        }
        const on = (x: string) => {
          text += x;
          const i = text.indexOf('event: console\n');
          if (i >= 0 && text.indexOf('\n\n', i) > 0) {
            res.off('data', on);
            resolve({ req, status: 200, first: text });
          }
        };
        res.on('data', on);
      });
      req.on('error', reject);
      req.end();
    });
  }

  const listTime = async () => {
    const t = performance.now();
    const r = await varlinkCall(d.socket, 'io.systemd.Machine.List', {}, { more: true });
    const ms = performance.now() - t;
    expect(r.map((m) => m.name)).toEqual(['dm-web-load']);
    return ms;
  };

  it('200 open event streams: all served, cheap, and the varlink socket answers as before', async () => {
    const pid = d.proc!.pid!;
    const before: number[] = [];
    for (let i = 0; i < 5; i++) before.push(await listTime());
    const rss0 = rssKb(pid);
    const streams = [];
    for (let i = 0; i < 200; i++) streams.push(openStream());
    const open = await Promise.all(streams);
    try {
      expect(open.filter((s) => s.status === 200)).toHaveLength(200);
      const during: number[] = [];
      for (let i = 0; i < 5; i++) during.push(await listTime());
      const rss1 = rssKb(pid);
      const med = (a: number[]) => a.slice().sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
      console.log(`varlink List: median ${med(before).toFixed(1)} ms before, ${med(during).toFixed(1)} ms with 200 event streams open; nspawnd RSS +${((rss1 - rss0) / 1024).toFixed(1)} MB for them (${((rss1 - rss0) / 200).toFixed(1)} kB each)`);
      // generous: the socket must not be starved (it answers in a few ms here)
      expect(med(during)).toBeLessThan(1000);
      expect(rss1 - rss0).toBeLessThan(200 * 200); // < 200 kB per stream
      // the page's list answers as well
      const list = await httpRequest(base, 'GET', '/api/machines', { Cookie: cookie });
      expect(list.status).toBe(200);
    } finally {
      for (const s of open) s.req.destroy();
    }
  });

  it('bounds the open streams (512): the next is told to come back later', async () => {
    const open = await Promise.all(Array.from({ length: 512 }, () => openStream()));
    try {
      expect(open.filter((s) => s.status === 200)).toHaveLength(512);
      const over = await openStream();
      expect(over.status).toBe(503);
      expect(over.first).toBe('Too many open event streams (512): close some pages of the view.\n');
    } finally {
      for (const s of open) s.req.destroy();
    }
    // given back once closed
    let again = await openStream();
    for (let i = 0; i < 50 && again.status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 100));
      again = await openStream();
    }
    expect(again.status).toBe(200);
    again.req.destroy();
  });

  it('tails a huge console log from its end (64 KiB), never reading it whole', async () => {
    const log = join(d.base, 'log/dm-web-big.log');
    // 16 GiB, sparse, then real lines
    closeSync(openSync(log, 'w'));
    truncateSync(log, 16 * 1024 ** 3);
    const fd = openSync(log, 'a');
    for (let i = 0; i < 5000; i++) writeSync(fd, `big line ${i}\n`);
    closeSync(fd);
    const rss0 = rssKb(d.proc!.pid!);
    const t = performance.now();
    const s = await openStream('dm-web-big');
    const ms = performance.now() - t;
    s.req.destroy();
    expect(s.status).toBe(200);
    const data = JSON.parse(/event: console\ndata: (.*)\n\n/.exec(s.first)![1]!) as { reset: boolean; text: string; skipped: number };
    expect(data.reset).toBe(true);
    expect(data.text.endsWith('big line 4999\n')).toBe(true);
    expect(data.text).toMatch(/^big line \d+\n/);
    expect(data.text.length).toBeLessThanOrEqual(64 * 1024);
    expect(data.skipped).toBeGreaterThan(16 * 1024 ** 3);
    expect(rssKb(d.proc!.pid!) - rss0).toBeLessThan(64 * 1024);
    console.log(`the tail of a 16 GiB console log: first event in ${ms.toFixed(0)} ms`);
  });

  it('answers unknown machines and odd names in one line', async () => {
    const u = await httpRequest(base, 'GET', '/api/machines/dm-web-nope/events', { Cookie: cookie });
    expect([u.status, JSON.parse(u.body)]).toEqual([404, { error: "No machine 'dm-web-nope' known." }]);
    const odd = await httpRequest(base, 'GET', `/api/machines/${encodeURIComponent('a b<c>')}`, { Cookie: cookie });
    expect([odd.status, JSON.parse(odd.body)]).toEqual([400, { error: "Invalid machine name 'a b<c>'." }]);
    const img = await httpRequest(base, 'POST', '/api/images/remove', { Cookie: cookie, 'Content-Type': 'application/json', Origin: base }, JSON.stringify({ name: '..' }));
    expect([img.status, JSON.parse(img.body)]).toEqual([400, { error: "Invalid image name '..'." }]);
    expect(existsSync(join(d.machines, 'dm-web-load'))).toBe(true);
  });
});
