// The web view's server on a fake nspawnd (no root): access (401, the token for a cookie, CSRF), answers for bad
// input (unknown machines, odd names, escaping), each action mapped onto the varlink method nspawnctl uses, the
// console stream and its bound.
import { execa } from 'execa';
import { request } from 'node:http';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VarlinkError } from '@nspawn/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWeb, type WebServer } from './server.js';

let dir = '';
let web: WebServer;
let base = '';
let cookie = '';
const calls: Array<[string, Record<string, unknown>]> = [];
const running = new Map<string, Record<string, unknown>>();
const images = new Map<string, Record<string, unknown>>();

function fakeCall(method: string, p: Record<string, unknown>, more = false): Promise<Array<Record<string, unknown>>> {
  calls.push([method, p]);
  const list = (m: Map<string, Record<string, unknown>>, none: string) => {
    if (typeof p.name === 'string') {
      const x = m.get(p.name);
      if (!x) throw new VarlinkError(none, {});
      return [x];
    }
    if (m.size === 0) throw new VarlinkError(none, {});
    if (!more && m.size > 1) throw new VarlinkError('org.varlink.service.ExpectedMore', {});
    return [...m.values()];
  };
  const name = p.name as string;
  switch (method) {
    case 'io.systemd.Machine.List':
      return Promise.resolve(list(running, 'io.systemd.Machine.NoSuchMachine'));
    case 'io.systemd.MachineImage.List':
      return Promise.resolve(list(images, 'io.systemd.MachineImage.NoSuchImage'));
    case 'io.nspawn.Machine.Start':
      if (!images.has(name)) return Promise.reject(new VarlinkError('io.systemd.MachineImage.NoSuchImage', { message: `No image '${name}' in /x` }));
      running.set(name, { name, class: 'container', leader: { pid: 4242 }, timestamp: { realtime: Date.now() * 1000 }, state: 'running', OSRelease: ['PRETTY_NAME=Fake OS'] });
      return Promise.resolve([{}]);
    case 'io.nspawn.Machine.Poweroff':
    case 'io.systemd.Machine.Terminate':
    case 'io.systemd.Machine.Kill':
      if (!running.has(name)) return Promise.reject(new VarlinkError('io.systemd.Machine.NoSuchMachine', {}));
      running.delete(name);
      return Promise.resolve([{}]);
    case 'io.systemd.MachineImage.Remove':
      if (running.has(name)) return Promise.reject(new VarlinkError('io.nspawn.MachineImage.Busy', { message: `Image '${name}' is in use by a running machine` }));
      images.delete(name);
      return Promise.resolve([{}]);
    case 'io.systemd.MachineImage.Clone':
    case 'io.systemd.MachineImage.Update':
      return Promise.resolve([{}]);
  }
  return Promise.reject(new VarlinkError('org.varlink.service.MethodNotFound', { method }));
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function req(method: string, path: string, opts: { headers?: Record<string, string>; body?: string; withCookie?: boolean } = {}): Promise<Answer> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...(opts.withCookie === false ? {} : { Cookie: cookie }), ...opts.headers };
    const r = request({ host: u.hostname, port: u.port, method, path, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    r.on('error', reject);
    r.end(opts.body);
  });
}

const post = (path: string, body: Record<string, unknown> = {}, headers: Record<string, string> = {}) =>
  req('POST', path, { body: JSON.stringify(body), headers: { 'Content-Type': 'application/json', Origin: base.replace(/\/$/, ''), 'Sec-Fetch-Site': 'same-origin', ...headers } });

/** Opens an event stream and resolves with what came within MS (and the response, closed). */
function stream(path: string, ms: number): Promise<{ status: number; text: string }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const r = request({ host: u.hostname, port: u.port, path, headers: { Cookie: cookie } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      setTimeout(() => {
        r.destroy();
        resolve({ status: res.statusCode!, text });
      }, ms);
    });
    r.on('error', reject);
    r.end();
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dm-web-server-'));
  for (const d of ['run', 'logs', 'assets']) mkdirSync(join(dir, d));
  writeFileSync(join(dir, 'assets/index.html'), '<!doctype html><title>view</title>');
  writeFileSync(join(dir, 'assets/app.js'), 'void 0;');
  writeFileSync(join(dir, 'assets/style.css'), 'body{}');
  images.set('dm-web-a', { name: 'dm-web-a', type: 'directory', readOnly: false, path: join(dir, 'machines/dm-web-a'), OSRelease: ['PRETTY_NAME=<script>alert(1)</script>'] });
  images.set('dm-web-<img src=x onerror=alert(1)>', { name: 'dm-web-<img src=x onerror=alert(1)>', type: 'directory', readOnly: false });
  web = await startWeb({
    config: { host: '127.0.0.1', port: 0 },
    runtimeDir: join(dir, 'run'),
    logsDir: join(dir, 'logs'),
    imagesDir: join(dir, 'machines'),
    call: fakeCall,
    readStats: () => ({ cpuUsageNs: 1, memoryBytes: 2, tasks: 3 }),
    formatAddress: (a) => a.address.join('.'),
    log: () => {},
    assetsDir: join(dir, 'assets'),
    maxStreams: 3,
  });
  base = web.url;
  cookie = `nspawnd-web-${web.port}=${web.token}`;
});

afterAll(async () => {
  await web?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('access', () => {
  it('writes the address and token into a root-only file of the runtime directory', () => {
    const f = join(dir, 'run/web-access.json');
    expect(statSync(f).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(f, 'utf8'))).toEqual({ url: base, token: web.token, pid: process.pid });
    expect(base).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
  });

  it('answers 401 to every request without the cookie or with a wrong one, static files and streams included', async () => {
    for (const path of ['/', '/images', '/machines/dm-web-a', '/static/app.js', '/static/style.css', '/api/machines', '/api/images', '/api/machines/dm-web-a/events', '/nothing']) {
      const r = await req('GET', path, { withCookie: false });
      expect(r.status, path).toBe(401);
      expect(r.body).not.toContain('view');
      const w = await req('GET', path, { withCookie: false, headers: { Cookie: `nspawnd-web-${web.port}=${web.token.slice(0, -1)}x` } });
      expect(w.status, path).toBe(401);
    }
    expect((await req('GET', `/?token=${web.token}x`, { withCookie: false })).status).toBe(401);
    expect((await req('GET', '/?token=', { withCookie: false })).status).toBe(401);
  });

  it('swaps the token in the address for an HttpOnly, SameSite=Strict cookie and drops it from the address', async () => {
    const r = await req('GET', `/machines/dm-web-a?token=${web.token}&x=1`, { withCookie: false });
    expect(r.status).toBe(200);
    expect(r.headers['set-cookie']).toEqual([`nspawnd-web-${web.port}=${web.token}; Path=/; HttpOnly; SameSite=Strict`]);
    expect(r.body).toContain('<meta http-equiv="refresh" content="0;url=/machines/dm-web-a?x=1">');
    expect(r.body).not.toContain(web.token);
    expect(r.headers['referrer-policy']).toBe('no-referrer');
    // never to another site: "//host" is a path here
    const odd = await req('GET', `//evil.example/x?token=${web.token}`, { withCookie: false });
    expect(odd.body).toContain('<meta http-equiv="refresh" content="0;url=/evil.example/x">');
    // the cookie then opens everything
    expect((await req('GET', '/')).body).toContain('<title>view</title>');
    expect((await req('GET', '/static/app.js')).body).toBe('void 0;');
    // the API takes the token in the address as well (scripts), without a cookie to swap
    expect((await req('GET', `/api/images?token=${web.token}`, { withCookie: false })).status).toBe(200);
  });

  it('refuses a change without the cookie, from another origin, or without saying where it comes from (CSRF)', async () => {
    const before = calls.length;
    const token = await req('POST', `/api/machines/dm-web-a/start?token=${web.token}`, { withCookie: false, body: '{}', headers: { 'Content-Type': 'application/json', Origin: base.slice(0, -1) } });
    expect(token.status).toBe(401);
    const none = await req('POST', '/api/machines/dm-web-a/start', { body: '{}', headers: { 'Content-Type': 'application/json' } });
    expect(none.status).toBe(403);
    expect(JSON.parse(none.body).error).toBe('Cross-origin request refused: no Origin or Sec-Fetch-Site header.');
    expect((await post('/api/machines/dm-web-a/start', {}, { Origin: 'http://evil.example', 'Sec-Fetch-Site': 'cross-site' })).status).toBe(403);
    expect((await post('/api/machines/dm-web-a/start', {}, { Origin: 'http://evil.example', 'Sec-Fetch-Site': '' })).status).toBe(403);
    const form = await req('POST', '/api/machines/dm-web-a/start', { body: 'a=1', headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: base.slice(0, -1) } });
    expect(form.status).toBe(415);
    expect(calls.length).toBe(before);
  });

  it('answers only to its own names on loopback (DNS rebinding)', async () => {
    const r = await req('GET', '/', { headers: { Host: `evil.example:${web.port}` } });
    expect(r.status).toBe(400);
    expect((await req('GET', '/', { headers: { Host: `localhost:${web.port}` } })).status).toBe(200);
  });
});

describe('the pages and the API', () => {
  it('lists machines and the images they can be started from, through List of both interfaces', async () => {
    const r = JSON.parse((await req('GET', '/api/machines')).body) as { machines: Array<Record<string, unknown>> };
    // the image whose name is no machine name is not a machine
    expect(r.machines.map((m) => [m.name, m.state, m.os])).toEqual([['dm-web-a', 'off', '<script>alert(1)</script>']]);
  });

  it('starts, powers off, reboots and terminates with the methods nspawnctl calls', async () => {
    calls.length = 0;
    expect((await post('/api/machines/dm-web-a/start')).status).toBe(200);
    expect(calls.at(-1)).toEqual(['io.nspawn.Machine.Start', { name: 'dm-web-a' }]);
    const list = JSON.parse((await req('GET', '/api/machines')).body) as { machines: Array<Record<string, unknown>> };
    expect(list.machines[0]).toMatchObject({ name: 'dm-web-a', state: 'running', leader: 4242, os: 'Fake OS' });
    expect((await post('/api/machines/dm-web-a/reboot')).status).toBe(200);
    expect(calls.at(-1)).toEqual(['io.systemd.Machine.Kill', { name: 'dm-web-a', whom: 'leader', signal: 2 }]);
    await post('/api/machines/dm-web-a/start');
    await post('/api/machines/dm-web-a/poweroff');
    expect(calls.at(-1)).toEqual(['io.nspawn.Machine.Poweroff', { name: 'dm-web-a' }]);
    await post('/api/machines/dm-web-a/start');
    await post('/api/machines/dm-web-a/terminate');
    expect(calls.at(-1)).toEqual(['io.systemd.Machine.Terminate', { name: 'dm-web-a' }]);
  });

  it('says clearly what is unknown or invalid: 404 and 400 with one line, escaped in HTML', async () => {
    const api = await req('GET', '/api/machines/dm-nope');
    expect(api.status).toBe(404);
    expect(JSON.parse(api.body)).toEqual({ error: "No machine 'dm-nope' known." });
    expect(JSON.parse((await post('/api/machines/dm-nope/terminate')).body)).toEqual({ error: "No machine 'dm-nope' known." });
    expect((await req('GET', '/api/machines/dm-nope/stats')).status).toBe(404);
    expect(JSON.parse((await post('/api/machines/dm-nope/start')).body).error).toBe("No image 'dm-nope' in /x");
    const pg = await req('GET', '/machines/dm-nope');
    expect(pg.status).toBe(404);
    expect(pg.headers['content-type']).toMatch(/^text\/html/);
    expect(pg.body).toContain('No machine &#39;dm-nope&#39; known.');
    const odd = await req('GET', `/machines/${encodeURIComponent('<script>alert(1)</script>')}`);
    expect(odd.status).toBe(400);
    expect(odd.body).toContain('Invalid machine name &#39;&#60;script&#62;alert(1)&#60;/script&#62;&#39;.');
    expect(odd.body).not.toContain('<script>');
    expect((await req('GET', '/machines/a%ZZ')).status).toBe(400);
    expect((await req('GET', `/api/machines/${'a'.repeat(100)}`)).status).toBe(400);
    expect((await post('/api/images/remove', { name: '../etc' })).status).toBe(400);
    expect(JSON.parse((await post('/api/images/remove', { name: 'a/b' })).body).error).toBe("Invalid image name 'a/b'.");
    expect((await post('/api/images/clone', { name: 'dm-web-a', newName: '.' })).status).toBe(400);
    expect((await req('GET', '//api/machines')).status).toBe(404);
    expect((await req('DELETE', '/api/machines')).status).toBe(405);
    expect((await req('POST', '/api/images/remove', { body: '{', headers: { 'Content-Type': 'application/json', Origin: base.slice(0, -1) } })).status).toBe(400);
    expect((await req('POST', '/api/images/remove', { body: 'x'.repeat(70000), headers: { 'Content-Type': 'application/json', Origin: base.slice(0, -1) } })).status).toBe(413);
  });

  it('refuses to remove the image of a running machine, as nspawnd does', async () => {
    await post('/api/machines/dm-web-a/start');
    const r = await post('/api/images/remove', { name: 'dm-web-a' });
    expect(r.status).toBe(409);
    expect(JSON.parse(r.body).error).toBe("Image 'dm-web-a' is in use by a running machine");
    const imgs = JSON.parse((await req('GET', '/api/images')).body) as { images: Array<Record<string, unknown>> };
    expect(imgs.images.find((i) => i.name === 'dm-web-a')).toMatchObject({ running: true });
    expect(imgs.images.map((i) => i.name)).toContain('dm-web-<img src=x onerror=alert(1)>');
    await post('/api/machines/dm-web-a/terminate');
    expect(images.has('dm-web-a')).toBe(true);
  });

  it('maps image actions onto io.systemd.MachineImage', async () => {
    calls.length = 0;
    await post('/api/images/read-only', { name: 'dm-web-<img src=x onerror=alert(1)>', readOnly: true });
    await post('/api/images/clone', { name: 'dm-web-a', newName: 'dm-web-c', readOnly: true });
    await post('/api/images/rename', { name: 'dm-web-a', newName: 'dm-web-d' });
    expect((await post('/api/images/read-only', { name: 'dm-web-a', readOnly: 'yes' })).status).toBe(400);
    expect(calls).toEqual([
      ['io.systemd.MachineImage.Update', { name: 'dm-web-<img src=x onerror=alert(1)>', readOnly: true }],
      ['io.systemd.MachineImage.Clone', { name: 'dm-web-a', newName: 'dm-web-c', readOnly: true }],
      ['io.systemd.MachineImage.Update', { name: 'dm-web-a', newName: 'dm-web-d' }],
    ]);
  });

  it('refuses an import of what is no file', async () => {
    expect(JSON.parse((await post('/api/images/import', { path: 'relative.tar' })).body).error).toBe('Give the archive as an absolute path on the host.');
    expect(JSON.parse((await post('/api/images/import', { path: join(dir, 'none.tar') })).body).error).toMatch(/none\.tar: No such file$/);
    expect(JSON.parse((await post('/api/images/import', { path: dir })).body).error).toMatch(/not a regular file/);
    expect(JSON.parse((await post('/api/images/import', { path: '/etc/hostname', name: 'a/b' })).body).error).toBe("Image name 'a/b' is invalid.");
  });
});

describe('import-tar', () => {
  it('imports a gzip archive in a child, its progress counted against the archive and the tar inside', async () => {
    const tree = join(dir, 'tree');
    mkdirSync(join(tree, 'etc'), { recursive: true });
    writeFileSync(join(tree, 'etc/os-release'), 'ID=imported\n');
    writeFileSync(join(tree, 'data'), 'x'.repeat(300000));
    const tgz = join(dir, 'img.tar.gz');
    await execa('tar', ['-C', tree, '-czf', tgz, '.']);
    const plain = (await execa('gzip', ['-dc', tgz], { encoding: 'buffer', stripFinalNewline: false })).stdout.length;
    mkdirSync(join(dir, 'machines'), { recursive: true });
    const r = await post('/api/images/import', { path: tgz, name: 'dm-web-imp' });
    expect(r.status).toBe(202);
    let job: Record<string, unknown> = {};
    for (let i = 0; i < 100 && job.state !== 'done' && job.state !== 'failed'; i++) {
      await new Promise((res) => setTimeout(res, 100));
      job = (JSON.parse((await req('GET', '/api/imports')).body) as { imports: Array<Record<string, unknown>> }).imports.at(-1)!;
    }
    expect(job).toMatchObject({ state: 'done', name: 'dm-web-imp', file: tgz, total: statSync(tgz).size + plain });
    expect(job.done).toBe(job.total);
    expect(readFileSync(join(dir, 'machines/dm-web-imp/etc/os-release'), 'utf8')).toBe('ID=imported\n');
    // the same name again: import-tar's own refusal, as the job's error
    await post('/api/images/import', { path: tgz, name: 'dm-web-imp' });
    for (let i = 0; i < 100 && job.state !== 'failed'; i++) {
      await new Promise((res) => setTimeout(res, 100));
      job = (JSON.parse((await req('GET', '/api/imports')).body) as { imports: Array<Record<string, unknown>> }).imports.at(-1)!;
    }
    expect(job.state).toBe('failed');
    expect(job.error).toMatch(/Image 'dm-web-imp' already exists/);
  });
});

describe('the console stream', () => {
  it('sends the tail of the log, then what is appended; 404 for an unknown machine', async () => {
    writeFileSync(join(dir, 'logs/dm-web-a.log'), 'first\n');
    const p = stream('/api/machines/dm-web-a/events', 1500);
    await new Promise((r) => setTimeout(r, 300));
    appendFileSync(join(dir, 'logs/dm-web-a.log'), 'second\n');
    const s = await p;
    expect(s.status).toBe(200);
    expect(s.text).toContain('event: console\ndata: {"reset":true,"text":"first\\n","skipped":0,"missing":false}\n\n');
    expect(s.text).toContain('event: console\ndata: {"text":"second\\n"}\n\n');
    expect((await stream('/api/machines/dm-nope/events', 300)).status).toBe(404);
  });

  it('holds at most its bound of streams open: the next gets 503', async () => {
    const open = [stream('/api/machines/dm-web-a/events', 1500), stream('/api/machines/dm-web-a/events', 1500), stream('/api/machines/dm-web-a/events', 1500)];
    await new Promise((r) => setTimeout(r, 400));
    expect(web.streams).toBe(3);
    const over = await req('GET', '/api/machines/dm-web-a/events');
    expect(over.status).toBe(503);
    expect(over.body).toBe('Too many open event streams (3): close some pages of the view.\n');
    expect((await Promise.all(open)).map((s) => s.status)).toEqual([200, 200, 200]);
    await new Promise((r) => setTimeout(r, 100));
    expect(web.streams).toBe(0);
  });
});

describe('closing', () => {
  it('removes the access file', async () => {
    const f = join(dir, 'run/web-access.json');
    expect(existsSync(f)).toBe(true);
    await web.close();
    expect(existsSync(f)).toBe(false);
    web = undefined as unknown as WebServer;
  });
});
