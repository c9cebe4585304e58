import { describe, expect, it } from 'vitest';
import { answer, buildReply, DHCP, parseDhcp, type DhcpServerOptions } from './dhcp.js';

const opts: DhcpServerOptions = { serverAddress: '10.0.0.1', prefixLength: 28, leases: [{ mac: '02:11:22:33:44:55', address: '10.0.0.2' }], dns: ['10.0.0.1'] };
function request(type: number, mac = '02:11:22:33:44:55', extra: number[] = []): Buffer {
  const b = Buffer.alloc(240);
  b[0] = 1;
  b[1] = 1;
  b[2] = 6;
  b.writeUInt32BE(0xabcdef01, 4);
  Buffer.from(mac.replaceAll(':', ''), 'hex').copy(b, 28);
  b.writeUInt32BE(0x63825363, 236);
  return Buffer.concat([b, Buffer.from([53, 1, type, ...extra, 255])]);
}

describe('DHCP', () => {
  it('offers and acknowledges the lease of a known MAC only', () => {
    const d = parseDhcp(request(DHCP.DISCOVER))!;
    expect(answer(d, opts)).toEqual({ type: DHCP.OFFER, yiaddr: '10.0.0.2' });
    expect(answer(parseDhcp(request(DHCP.DISCOVER, '02:00:00:00:00:01'))!, opts)).toBeUndefined();
    const r = parseDhcp(request(DHCP.REQUEST, undefined, [50, 4, 10, 0, 0, 2, 54, 4, 10, 0, 0, 1]))!;
    expect(r.requested).toBe('10.0.0.2');
    expect(answer(r, opts)).toEqual({ type: DHCP.ACK, yiaddr: '10.0.0.2' });
    expect(answer(parseDhcp(request(DHCP.REQUEST, undefined, [50, 4, 10, 0, 0, 9]))!, opts)?.type).toBe(DHCP.NAK);
    expect(answer(parseDhcp(request(DHCP.REQUEST, undefined, [50, 4, 10, 0, 0, 2, 54, 4, 10, 9, 9, 9]))!, opts)).toBeUndefined();
  });
  it('builds a reply with mask, router, lease time and DNS', () => {
    const d = parseDhcp(request(DHCP.DISCOVER))!;
    const reply = buildReply(d, DHCP.OFFER, opts, '10.0.0.2');
    const back = parseDhcp(Buffer.concat([Buffer.from([1]), reply.subarray(1)]))!;
    expect(back.yiaddr).toBe('10.0.0.2');
    expect(back.type).toBe(DHCP.OFFER);
    expect(back.serverId).toBe('10.0.0.1');
    expect(reply.includes(Buffer.from([1, 4, 255, 255, 255, 240]))).toBe(true);
    expect(reply.includes(Buffer.from([3, 4, 10, 0, 0, 1]))).toBe(true);
  });
});
