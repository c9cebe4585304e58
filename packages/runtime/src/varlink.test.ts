import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVarlinkServer, encodeVarlink, varlinkCall, VarlinkDecoder, VarlinkError } from './varlink.js';
import { formatAddress, formatProcessTree } from './inspect.js';
import { isValidMachineName } from './machines.js';

describe('varlink codec', () => {
  it('splits NUL-terminated JSON messages across chunks', () => {
    const d = new VarlinkDecoder();
    const wire = Buffer.concat([encodeVarlink({ method: 'a.B', parameters: { x: 'é' } }), encodeVarlink({ parameters: {} })]);
    const out = [...d.push(wire.subarray(0, 7)), ...d.push(wire.subarray(7, 20)), ...d.push(wire.subarray(20))];
    expect(out).toEqual([{ method: 'a.B', parameters: { x: 'é' } }, { parameters: {} }]);
    expect(() => new VarlinkDecoder().push(Buffer.from('[1]\0'))).toThrow(/not a JSON object/);
  });
});

describe('varlink server and client', () => {
  let dir: string;
  let sock: string;
  let server: ReturnType<typeof createVarlinkServer>;
  beforeAll(async () => {
    dir = mkdtempSync('/tmp/dm-vl-');
    sock = join(dir, 's');
    server = createVarlinkServer({
      methods: {
        'io.test.Echo': (p) => ({ echo: p.v }),
        'io.test.Count': (_p, ctx) => {
          if (!ctx.call.more) throw new VarlinkError('org.varlink.service.ExpectedMore');
          ctx.reply({ n: 1 });
          ctx.reply({ n: 2 });
          return { n: 3 };
        },
        'io.test.Fail': () => {
          throw new VarlinkError('io.test.Nope', { message: 'no' });
        },
      },
    });
    await new Promise<void>((r) => server.listen(sock, () => r()));
  });
  afterAll(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers calls, streams with more, reports errors by name', async () => {
    expect(await varlinkCall(sock, 'io.test.Echo', { v: 5 })).toEqual([{ echo: 5 }]);
    expect(await varlinkCall(sock, 'io.test.Count', {}, { more: true })).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
    await expect(varlinkCall(sock, 'io.test.Count')).rejects.toMatchObject({ error: 'org.varlink.service.ExpectedMore' });
    await expect(varlinkCall(sock, 'io.test.Fail')).rejects.toMatchObject({ error: 'io.test.Nope', message: 'io.test.Nope: no' });
    await expect(varlinkCall(sock, 'io.test.Missing')).rejects.toMatchObject({ error: 'org.varlink.service.MethodNotFound' });
    await expect(varlinkCall(sock, 'io.other.X')).rejects.toMatchObject({ error: 'org.varlink.service.InterfaceNotFound' });
    const info = (await varlinkCall(sock, 'org.varlink.service.GetInfo'))[0]!;
    expect(info.interfaces).toEqual(['org.varlink.service', 'io.test']);
    await expect(varlinkCall(join(dir, 'none'), 'io.test.Echo')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('answers pipelined calls on one connection in order; oneway gets no reply', async () => {
    const got = await new Promise<unknown[]>((resolve) => {
      const s = connect(sock);
      const d = new VarlinkDecoder();
      const out: unknown[] = [];
      s.on('data', (c: Buffer) => {
        out.push(...d.push(c));
        if (out.length === 2) {
          s.end();
          resolve(out);
        }
      });
      s.write(Buffer.concat([encodeVarlink({ method: 'io.test.Echo', parameters: { v: 1 } }), encodeVarlink({ method: 'io.test.Echo', parameters: { v: 2 }, oneway: true }), encodeVarlink({ method: 'io.test.Echo', parameters: { v: 3 } })]));
    });
    expect(got).toEqual([{ parameters: { echo: 1 } }, { parameters: { echo: 3 } }]);
  });
});

describe('inspection helpers', () => {
  it('formats addresses and process trees', () => {
    expect(formatAddress({ family: 2, address: [10, 0, 0, 2] })).toBe('10.0.0.2');
    expect(formatAddress({ family: 10, address: [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1] })).toBe('fe80::1');
    const t = formatProcessTree(
      [
        { pid: 10, ppid: 1, comm: 'init', cmdline: '/sbin/init' },
        { pid: 11, ppid: 10, comm: 'a', cmdline: 'a' },
        { pid: 12, ppid: 11, comm: 'b', cmdline: 'b' },
        { pid: 13, ppid: 10, comm: 'c', cmdline: 'c' },
      ],
      10,
    );
    expect(t).toEqual(['10 /sbin/init', '├─11 a', '│ └─12 b', '└─13 c']);
  });
  it('accepts machine names as machined does', () => {
    expect(isValidMachineName('dm-a.b')).toBe(true);
    for (const n of ['', '-a', 'a b', 'a/b', 'x'.repeat(65), 'a..b', 'dm-a.b_c', '..', '.']) expect(isValidMachineName(n)).toBe(false);
  });
});

describe('varlink against hostile peers', () => {
  let dir: string;
  let sock: string;
  let server: ReturnType<typeof createVarlinkServer>;
  const seen: unknown[] = [];
  beforeAll(async () => {
    dir = mkdtempSync('/tmp/dm-vlh-');
    sock = join(dir, 's');
    server = createVarlinkServer({
      methods: {
        'io.test.Echo': (p) => ({ echo: p.v ?? null }),
        'io.test.Typed': {
          params: {
            name: { type: 'string', required: true },
            count: 'integer',
            flag: 'boolean',
            list: 'string[]',
            pid: { type: ['uint', 'object'] },
          },
          handler: (p) => {
            seen.push(p);
            return { ok: true };
          },
        },
      },
    });
    await new Promise<void>((r) => server.listen(sock, () => r()));
  });
  afterAll(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /**
   * Writes raw bytes; resolves with what came back and whether the server closed the connection, once WANT replies
   * came (0: once it closed), or after 20 s.
   */
  const raw = (data: Buffer | string, want = 1) =>
    new Promise<{ replies: unknown[]; closed: boolean }>((resolve) => {
      const s = connect(sock);
      const d = new VarlinkDecoder();
      const replies: unknown[] = [];
      let closed = false;
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        s.destroy();
        resolve({ replies, closed });
      };
      s.on('data', (c: Buffer) => {
        replies.push(...d.push(c));
        if (want > 0 && replies.length >= want) finish();
      });
      s.on('error', () => {});
      s.on('close', () => {
        closed = true;
        finish();
      });
      s.write(data);
      setTimeout(finish, 20000);
    });

  it('method names that are Object.prototype members are unknown methods, not object internals', async () => {
    for (const m of ['toString', '__proto__', 'constructor', 'hasOwnProperty', 'valueOf', 'io.test.__proto__', 'io.test.constructor', '__defineGetter__']) {
      await expect(varlinkCall(sock, m, { v: 1 }), m).rejects.toMatchObject({ error: 'org.varlink.service.MethodNotFound' });
    }
  });

  it('parameters that are not an object are an InvalidParameter; null is no parameters, as systemd takes it', async () => {
    for (const p of ['[1,2]', '"str"', '5', 'true']) {
      const r = await raw(`{"method":"io.test.Echo","parameters":${p}}\0`);
      expect(r.replies, p).toEqual([{ error: 'org.varlink.service.InvalidParameter', parameters: { parameter: 'parameters' } }]);
    }
    expect((await raw('{"method":"io.test.Echo","parameters":null}\0')).replies).toEqual([{ parameters: { echo: null } }]);
  });

  it('fields of the wrong type are an InvalidParameter naming the field; the handler never sees them', async () => {
    const bad: Array<[Record<string, unknown>, string]> = [
      [{}, 'name'],
      [{ name: null }, 'name'],
      [{ name: 5 }, 'name'],
      [{ name: 'x', count: '5' }, 'count'],
      [{ name: 'x', count: 1.5 }, 'count'],
      [{ name: 'x', flag: 'yes' }, 'flag'],
      [{ name: 'x', list: ['a', 1] }, 'list'],
      [{ name: 'x', list: 'a' }, 'list'],
      [{ name: 'x', pid: -1 }, 'pid'],
      [{ name: 'x', pid: [1] }, 'pid'],
      [{ name: 'x', pid: 'x' }, 'pid'],
    ];
    for (const [p, field] of bad)
      await expect(varlinkCall(sock, 'io.test.Typed', p), JSON.stringify(p)).rejects.toMatchObject({ error: 'org.varlink.service.InvalidParameter', parameters: { parameter: field } });
    expect(seen).toEqual([]);
    expect(await varlinkCall(sock, 'io.test.Typed', { name: 'x', count: -3, flag: false, list: ['a'], pid: { pid: 5 }, extra: 'ignored' })).toEqual([{ ok: true }]);
    expect(await varlinkCall(sock, 'io.test.Typed', { name: 'x', pid: 7, count: null })).toEqual([{ ok: true }]);
    expect(seen).toHaveLength(2);
  });

  it('a call that is not a call closes the connection without an answer', async () => {
    for (const m of ['{"method":5}\0', '{"parameters":{}}\0', '{"method":"io.test.Echo","more":"yes"}\0', 'not json\0', '[1]\0']) {
      const r = await raw(m, 0);
      expect(r, m).toEqual({ replies: [], closed: true });
    }
  });

  it('a message over 16 MiB (without its NUL, or with it) is refused: the connection is dropped, nothing echoed', async () => {
    const body = `{"method":"io.test.Echo","parameters":{"v":"${'x'.repeat(17 * 1024 * 1024)}"}}\0`;
    const r = await raw(body, 0);
    expect(r.replies).toEqual([]);
    expect(r.closed).toBe(true);
    // still serving everyone else
    expect(await varlinkCall(sock, 'io.test.Echo', { v: 2 })).toEqual([{ echo: 2 }]);
  });

  it('a stream of 400 MB without a NUL is cut off after 16 MiB: memory stays bounded', async () => {
    const before = process.memoryUsage().rss;
    const chunk = Buffer.alloc(1024 * 1024, 0x61);
    const sent = await new Promise<number>((resolve) => {
      const s = connect(sock);
      let n = 0;
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        s.destroy();
        resolve(n);
      };
      s.on('error', finish);
      s.on('close', finish);
      const pump = () => {
        while (!done && n < 400 * chunk.length) {
          n += chunk.length;
          if (!s.write(chunk)) {
            s.once('drain', pump);
            return;
          }
        }
        if (n >= 400 * chunk.length) setTimeout(finish, 500);
      };
      s.on('connect', pump);
    });
    const grown = process.memoryUsage().rss - before;
    expect(sent).toBeLessThan(64 * 1024 * 1024);
    expect(grown).toBeLessThan(96 * 1024 * 1024);
  });

  it('the client refuses a reply over 16 MiB and does not keep buffering it', async () => {
    const evil = join(dir, 'evil');
    const srv = createServer((c) => {
      c.on('error', () => {});
      const chunk = Buffer.alloc(1024 * 1024, 0x61);
      c.write('{"parameters":{"v":"');
      let n = 0;
      const pump = () => {
        while (n++ < 100) if (!c.write(chunk)) return void c.once('drain', pump);
      };
      pump();
    });
    await new Promise<void>((r) => srv.listen(evil, () => r()));
    try {
      await expect(varlinkCall(evil, 'io.test.Echo', {}, { timeoutMs: 20000 })).rejects.toThrow(/16 MiB/);
    } finally {
      srv.close();
    }
  });
});
