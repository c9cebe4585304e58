import { describe, expect, it } from 'vitest';
import { dissectImage } from './dissect.js';
import { GPT_FLAG_READ_ONLY } from './partition-types.js';
import { applyImagePolicy, parseImagePolicy, policyFlags, policyFlagsToString } from './policy.js';
import { bufferReader } from './reader.js';
import { buildGpt, fs } from './test/build.js';

const img = (extra: Array<{ role: 'home' | 'swap' | 'srv'; attrs?: bigint }> = [], rootAttrs = 0n) => {
  const parts = [{ type: { role: 'root' as const, arch: 'x86-64' as const }, attrs: rootAttrs }, ...extra.map((e) => ({ type: { role: e.role }, attrs: e.attrs ?? 0n }))];
  const buf = buildGpt({ sectors: 2048 + parts.length * 2048 + 64, partitions: parts.map((p, i) => ({ ...p, first: 2048 + i * 2048, last: 4095 + i * 2048 })) });
  parts.forEach((_, i) => fs.ext4(buf, (2048 + i * 2048) * 512));
  return dissectImage(bufferReader(buf), '/im.raw', { architecture: { native: 'x86-64', secondary: 'x86' } });
};

describe('parseImagePolicy (systemd 254 grammar)', () => {
  it('symbolic policies', () => {
    expect(policyFlagsToString(policyFlags(parseImagePolicy('*'), 'home'))).toBe('encrypted+unprotected+unused+absent+read-only-on+read-only-off+growfs-on+growfs-off');
    expect(policyFlagsToString(policyFlags(parseImagePolicy('*'), 'root'))).toBe('open+read-only-on+read-only-off+growfs-on+growfs-off');
    expect(policyFlagsToString(policyFlags(parseImagePolicy('-'), 'root'))).toBe('ignore+read-only-on+read-only-off+growfs-on+growfs-off');
    expect(policyFlagsToString(policyFlags(parseImagePolicy('~'), 'root'))).toBe('absent');
  });
  it('rules, a default, Verity rules derived from the data partition', () => {
    const p = parseImagePolicy('root=verity+read-only-on:home=ignore:=absent');
    expect(policyFlagsToString(policyFlags(p, 'root'))).toBe('verity+read-only-on+growfs-on+growfs-off');
    expect(policyFlagsToString(policyFlags(p, 'home'))).toBe('ignore+read-only-on+read-only-off+growfs-on+growfs-off');
    expect(policyFlagsToString(policyFlags(p, 'srv'))).toBe('absent');
    expect(policyFlagsToString(policyFlags(p, 'root-verity'))).toBe('unprotected+read-only-on+growfs-on+growfs-off');
    expect(policyFlagsToString(policyFlags(p, 'root-verity-sig'))).toBe('absent'); // needs "signed" on root
  });
  it('errors as systemd words them', () => {
    expect(() => parseImagePolicy('rooot=open')).toThrow('Unknown partition type in image policy: rooot=open');
    expect(() => parseImagePolicy('root=opn')).toThrow('Unknown partition policy flag in image policy: root=opn');
    expect(() => parseImagePolicy('root=open:root=absent')).toThrow(/root given twice/);
    expect(() => parseImagePolicy('root')).toThrow(/missing '='/);
  });
});

describe('applyImagePolicy', () => {
  it('allows what the policy allows', () => {
    const d = img([{ role: 'home' }]);
    expect(applyImagePolicy(d, parseImagePolicy('root=unprotected:home=unprotected:=absent'))).toBe(d);
  });
  it('refuses a partition the policy wants absent', () => {
    expect(() => applyImagePolicy(img([{ role: 'swap' }]), parseImagePolicy('root=unprotected:=absent'))).toThrow(
      "/im.raw: image does not match image policy: Partition of designator 'swap' exists, but not allowed by policy, refusing.",
    );
  });
  it('leaves out what it says is unused', () => {
    const d = applyImagePolicy(img([{ role: 'home' }]), parseImagePolicy('root=unprotected:home=unused'));
    expect(d.partitions.home).toBeUndefined();
    expect(d.entries[1]).toMatchObject({ ignored: 'the image policy says unused' });
  });
  it('refuses a missing partition it requires, and protection it cannot have', () => {
    expect(() => applyImagePolicy(img(), parseImagePolicy('root=unprotected:home=unprotected'))).toThrow(
      "Partition home discovered with policy 'absent' but 'unprotected' was required, refusing.",
    );
    expect(() => applyImagePolicy(img(), parseImagePolicy('root=verity'))).toThrow("Partition root discovered with policy 'unprotected' but 'verity' was required, refusing.");
  });
  it('checks the read-only GPT flag', () => {
    expect(() => applyImagePolicy(img(), parseImagePolicy('root=read-only-on'))).toThrow("Partition root has 'read-only' flag incorrectly set (must be 1, is 0), refusing.");
    expect(applyImagePolicy(img([], GPT_FLAG_READ_ONLY), parseImagePolicy('root=read-only-on')).partitions.root).toBeDefined();
  });
});
