import { describe, expect, it } from 'vitest';
import { nftScript } from './nft.js';
import { rewriteHosts, HOSTS_BEGIN, HOSTS_END } from './hosts.js';

describe('nftScript', () => {
  it('only deletes the table when nothing is left', () => {
    expect(nftScript([])).toBe('table ip nspawn\ndelete table ip nspawn\n');
  });
  it('masquerades and forwards ports', () => {
    const s = nftScript([{ masqueradeSubnet: '10.0.0.16/28', hostIf: 've-foo', ports: [{ protocol: 'tcp', hostPort: 8080, containerPort: 80, address: '10.0.0.18' }] }]);
    expect(s).toContain('fib daddr type local tcp dport 8080 dnat to 10.0.0.18:80');
    expect(s).toContain('ip saddr 10.0.0.16/28 ip daddr != 10.0.0.16/28 masquerade');
    expect(s).toContain('oifname "ve-foo" ip saddr 127.0.0.0/8 masquerade');
    expect(s.startsWith('table ip nspawn\ndelete table ip nspawn\ntable ip nspawn {')).toBe(true);
  });
  it('refuses odd interface names', () => {
    expect(() => nftScript([{ hostIf: 'a"b', ports: [{ protocol: 'udp', hostPort: 1, containerPort: 1, address: '10.0.0.2' }] }])).toThrow();
  });
});

describe('rewriteHosts', () => {
  const base = '127.0.0.1\tlocalhost\n::1\tlocalhost\n';
  it('adds, replaces and removes only its block', () => {
    const a = rewriteHosts(base, [{ address: '10.0.0.2', names: ['foo'] }]);
    expect(a).toBe(`${base}${HOSTS_BEGIN}\n10.0.0.2\tfoo\n${HOSTS_END}\n`);
    const b = rewriteHosts(a + '1.2.3.4 other\n', [{ address: '10.0.0.3', names: ['bar'] }]);
    expect(b).toContain('1.2.3.4 other');
    expect(b).not.toContain('foo');
    expect(rewriteHosts(b, [])).toBe(`${base}1.2.3.4 other\n`);
  });
});
