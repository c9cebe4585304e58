/** The IPv6 relay of forwarded ports, against echo servers on 127.0.0.1 standing in for the container. */
import { createSocket } from 'node:dgram';
import { createServer, connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { startIpv6Proxy } from '../src/index.js';

describe('startIpv6Proxy', () => {
  it('relays TCP and UDP from [::1]:HOST to the container address and port', async () => {
    const tcp = createServer((c) => c.pipe(c));
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
    const udp = createSocket('udp4');
    udp.on('message', (m, ri) => udp.send(Buffer.concat([Buffer.from('echo:'), m]), ri.port, ri.address));
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
    const tport = (tcp.address() as { port: number }).port;
    const uport = udp.address().port;
    const hostTcp = 20000 + (process.pid % 20000);
    const hostUdp = hostTcp + 1;
    const proxy = await startIpv6Proxy([
      { protocol: 'tcp', hostPort: hostTcp, containerPort: tport, address: '127.0.0.1' },
      { protocol: 'udp', hostPort: hostUdp, containerPort: uport, address: '127.0.0.1' },
    ]);
    try {
      const got = await new Promise<string>((res, rej) => {
        const c = connect({ host: '::1', port: hostTcp }, () => c.end('hello'));
        let b = '';
        c.on('data', (d) => (b += d));
        c.on('end', () => res(b));
        c.on('error', rej);
      });
      expect(got).toBe('hello');
      const client = createSocket('udp6');
      const reply = await new Promise<string>((res) => {
        client.on('message', (m) => res(m.toString()));
        client.send('ping', hostUdp, '::1');
      });
      client.close();
      expect(reply).toBe('echo:ping');
    } finally {
      await proxy.close();
      tcp.close();
      udp.close();
    }
  });

  it('fails cleanly when a port is taken, closing what it opened', async () => {
    const blocker = createServer();
    const port = 40000 + (process.pid % 20000);
    await new Promise<void>((r) => blocker.listen({ host: '::', port, ipv6Only: true }, r));
    try {
      await expect(startIpv6Proxy([{ protocol: 'tcp', hostPort: port, containerPort: 1, address: '127.0.0.1' }])).rejects.toThrow(/EADDRINUSE/);
    } finally {
      blocker.close();
    }
  });
});
