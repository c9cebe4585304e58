import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
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
    expect(isValidMachineName('dm-a.b_c')).toBe(true);
    for (const n of ['', '-a', 'a b', 'a/b', 'x'.repeat(65), 'a..b']) expect(isValidMachineName(n)).toBe(false);
  });
});
