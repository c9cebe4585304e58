import { describe, expect, it } from 'vitest';
import { attr, attrString, linkInfo } from './attrs.js';

describe('attribute builders', () => {
  it('pads to 4 bytes and records the unpadded length', () => {
    const a = attrString(3, 'ab'); // "ab\0" = 3 bytes
    expect(a.length).toBe(8);
    expect(a.readUInt16LE(0)).toBe(7);
    expect(a.readUInt16LE(2)).toBe(3);
  });
  it('nests veth peer info with an ifinfomsg header', () => {
    const b = linkInfo({ kind: 'veth', peer: { ifname: 'host0', netNsPid: 42 } });
    // kind "veth\0" (4+5 -> 12), then INFO_DATA(2) { PEER(1) { ifinfomsg(16) IFNAME(12) NS_PID(8) } }
    expect(b.subarray(4, 8).toString()).toBe('veth');
    const data = b.subarray(12);
    expect(data.readUInt16LE(2)).toBe(2);
    expect(data.readUInt16LE(0)).toBe(4 + 4 + 16 + 12 + 8);
    expect(data.readUInt32LE(4 + 4 + 16 + 12 + 4)).toBe(42);
  });
  it('macvlan defaults to bridge mode', () => {
    const b = linkInfo({ kind: 'macvlan' });
    expect(b.readUInt32LE(b.length - 4)).toBe(4);
    expect(attr(1, Buffer.alloc(0)).length).toBe(4);
  });
});
