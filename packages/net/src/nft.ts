/**
 * nspawn's own nftables table (`ip nspawn`): masquerading for containers' subnets and DNAT for --port, rebuilt as a
 * whole from the running containers' records in one atomic `nft -f -` transaction, and deleted with the last
 * container. No other table is read or touched.
 */
import { spawnSync } from 'node:child_process';

export const NFT_TABLE = 'nspawn';

export interface PortForward {
  protocol: 'tcp' | 'udp';
  hostPort: number;
  containerPort: number;
  /** the container's IPv4 address */
  address: string;
}

export interface NftContainer {
  /** masquerade what leaves this subnet ("10.0.0.16/28") */
  masqueradeSubnet?: string;
  /** the host-side link: loopback-originated (127/8) forwards leaving through it are masqueraded */
  hostIf?: string;
  ports: PortForward[];
}

const quote = (s: string) => {
  if (!/^[A-Za-z0-9_.@:-]+$/.test(s)) throw new RangeError(`refusing odd interface name in nft rules: ${s}`);
  return `"${s}"`;
};

/** the nft script that replaces the table with rules for CONTAINERS (or just deletes it when there are none) */
export function nftScript(containers: NftContainer[], table = NFT_TABLE): string {
  const lines = [`table ip ${table}`, `delete table ip ${table}`];
  const any = containers.some((c) => c.masqueradeSubnet || c.ports.length > 0);
  if (!any) return lines.join('\n') + '\n';
  const dnat: string[] = [];
  const post: string[] = [];
  for (const c of containers) {
    for (const p of c.ports) dnat.push(`fib daddr type local ${p.protocol} dport ${p.hostPort} dnat to ${p.address}:${p.containerPort}`);
    if (c.masqueradeSubnet) post.push(`ip saddr ${c.masqueradeSubnet} ip daddr != ${c.masqueradeSubnet} masquerade`);
    if (c.hostIf && c.ports.length > 0) post.push(`oifname ${quote(c.hostIf)} ip saddr 127.0.0.0/8 masquerade`);
  }
  lines.push(
    `table ip ${table} {`,
    `  chain prerouting {`,
    `    type nat hook prerouting priority dstnat; policy accept;`,
    ...dnat.map((r) => `    ${r}`),
    `  }`,
    `  chain output {`,
    `    type nat hook output priority -100; policy accept;`,
    ...dnat.map((r) => `    ${r}`),
    `  }`,
    `  chain postrouting {`,
    `    type nat hook postrouting priority srcnat; policy accept;`,
    ...post.map((r) => `    ${r}`),
    `  }`,
    `}`,
  );
  return lines.join('\n') + '\n';
}

/** runs `nft -f -` with SCRIPT */
export function applyNft(script: string): void {
  const r = spawnSync('nft', ['-f', '-'], { input: script, encoding: 'utf8' });
  if (r.error) throw new Error(`Failed to run nft: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`nft failed: ${r.stderr.trim()}`);
}

export function nftTableExists(table = NFT_TABLE): boolean {
  const r = spawnSync('nft', ['list', 'table', 'ip', table], { encoding: 'utf8' });
  return r.status === 0;
}
