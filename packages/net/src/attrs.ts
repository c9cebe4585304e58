/**
 * Typed builders for the nested netlink attributes the `netlink` package leaves as raw Buffers (IFLA_LINKINFO,
 * the veth peer, IFLA_PROP_LIST): plain TLV encoding, 4-byte aligned, as the kernel expects.
 */

const align4 = (n: number) => (n + 3) & ~3;

/** One attribute: TYPE with a payload (a Buffer, or a list of nested attributes). */
export function attr(type: number, payload: Buffer | Buffer[]): Buffer {
  const body = Array.isArray(payload) ? Buffer.concat(payload) : payload;
  const len = 4 + body.length;
  const out = Buffer.alloc(align4(len));
  out.writeUInt16LE(len, 0);
  out.writeUInt16LE(type, 2);
  body.copy(out, 4);
  return out;
}
export const attrU32 = (type: number, v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return attr(type, b);
};
export const attrS32 = (type: number, v: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v);
  return attr(type, b);
};
export const attrU16 = (type: number, v: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v);
  return attr(type, b);
};
export const attrString = (type: number, s: string) => attr(type, Buffer.from(s + '\0', 'utf8'));

/** struct ifinfomsg: family, type, index, flags, change (16 bytes) */
export function ifinfomsg(index = 0, flags = 0, change = 0): Buffer {
  const b = Buffer.alloc(16);
  b.writeInt32LE(index, 4);
  b.writeUInt32LE(flags >>> 0, 8);
  b.writeUInt32LE(change >>> 0, 12);
  return b;
}

// include/uapi/linux/if_link.h
export const IFLA = {
  ADDRESS: 1,
  IFNAME: 3,
  LINK: 5,
  MASTER: 10,
  LINKINFO: 18,
  NET_NS_PID: 19,
  NET_NS_FD: 28,
  PROP_LIST: 52,
  ALT_IFNAME: 53,
} as const;
/** newer attributes are parsed strictly: a nested one must say so */
export const NLA_F_NESTED = 0x8000;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const VETH_INFO_PEER = 1;
const IFLA_MACVLAN_MODE = 1;
const IFLA_IPVLAN_MODE = 1;
export const MACVLAN_MODE = { private: 1, vepa: 2, bridge: 4, passthru: 8, source: 16 } as const;
export const IPVLAN_MODE = { l2: 0, l3: 1, l3s: 2 } as const;

/** What a veth peer gets: its name, MAC, and the network namespace (by PID or fd) it is created in. */
export interface VethPeer {
  ifname: string;
  address?: Buffer;
  netNsPid?: number;
  netNsFd?: number;
}

export type LinkInfo =
  | { kind: 'veth'; peer: VethPeer }
  | { kind: 'bridge' }
  | { kind: 'dummy' }
  | { kind: 'macvlan'; mode?: keyof typeof MACVLAN_MODE }
  | { kind: 'ipvlan'; mode?: keyof typeof IPVLAN_MODE };

/** IFLA_LINKINFO's payload for a link kind (the attribute the `netlink` package takes as `linkinfo`). */
export function linkInfo(info: LinkInfo): Buffer {
  const kind = attrString(IFLA_INFO_KIND, info.kind);
  switch (info.kind) {
    case 'veth': {
      const p = info.peer;
      const peerAttrs = [attrString(IFLA.IFNAME, p.ifname)];
      if (p.address) peerAttrs.push(attr(IFLA.ADDRESS, p.address));
      if (p.netNsPid !== undefined) peerAttrs.push(attrU32(IFLA.NET_NS_PID, p.netNsPid));
      if (p.netNsFd !== undefined) peerAttrs.push(attrU32(IFLA.NET_NS_FD, p.netNsFd));
      // VETH_INFO_PEER carries a struct ifinfomsg, then the peer's attributes
      return Buffer.concat([kind, attr(IFLA_INFO_DATA, [attr(VETH_INFO_PEER, [ifinfomsg(), ...peerAttrs])])]);
    }
    case 'macvlan':
      return Buffer.concat([kind, attr(IFLA_INFO_DATA, [attrU32(IFLA_MACVLAN_MODE, MACVLAN_MODE[info.mode ?? 'bridge'])])]);
    case 'ipvlan':
      return Buffer.concat([kind, attr(IFLA_INFO_DATA, [attrU16(IFLA_IPVLAN_MODE, IPVLAN_MODE[info.mode ?? 'l2'])])]);
    case 'bridge':
    case 'dummy':
      return kind;
  }
}

/** IFLA_PROP_LIST with IFLA_ALT_IFNAME entries (RTM_NEWLINKPROP / RTM_DELLINKPROP) */
export function altnameProps(names: string[]): Buffer {
  return attr(IFLA.PROP_LIST | NLA_F_NESTED, names.map((n) => attrString(IFLA.ALT_IFNAME, n)));
}
