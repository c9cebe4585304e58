import { describe, expect, it } from 'vitest';
import { StatsSampler, type StatsReading } from './stats.js';

describe('StatsSampler', () => {
  it('samples every running machine: CPU in % of one CPU between samples, memory, tasks; 10 minutes kept', async () => {
    let now = 1_000_000;
    const cpu = { a: 0, b: 0 };
    let names = ['a', 'b'];
    const s = new StatsSampler(
      {
        names: async () => names,
        read: (n): StatsReading | undefined => (n === 'b' ? { cpuUsageNs: cpu.b, memoryBytes: undefined, tasks: 3 } : { cpuUsageNs: cpu.a, memoryBytes: 4096, tasks: 1 }),
      },
      2000,
      () => now,
    );
    expect(s.capacity).toBe(300);
    const seen: string[] = [];
    const stop = s.onSample((n) => seen.push(n));
    await s.sample();
    expect(s.latest('a')).toEqual({ t: 1_000_000, cpu: null, memory: 4096, tasks: 1 });
    now += 2000;
    cpu.a += 1e9; // one second of CPU in two: 50 %
    cpu.b += 4e9; // two CPUs busy: 200 %
    await s.sample();
    expect(s.latest('a')!.cpu).toBeCloseTo(50);
    expect(s.latest('b')).toEqual({ t: 1_002_000, cpu: 200, memory: null, tasks: 3 });
    expect(s.history('a')).toEqual({ t: [1000, 1002], cpu: [null, 50], memory: [4096, 4096], tasks: [1, 1] });
    expect(seen).toEqual(['a', 'b', 'a', 'b']);
    stop();
    for (let i = 0; i < 400; i++) {
      now += 2000;
      await s.sample();
    }
    expect(s.history('a').t).toHaveLength(300);
    // a machine that is gone loses its history
    names = ['b'];
    await s.sample();
    expect(s.history('a').t).toEqual([]);
    expect(s.latest('a')).toBeUndefined();
    expect(s.machines).toBe(1);
    expect(seen).toHaveLength(4);
  });
  it('skips a machine without a cgroup, and a round when nspawnd cannot list', async () => {
    const s = new StatsSampler({ names: async () => ['x'], read: () => undefined }, 2000);
    await s.sample();
    expect(s.machines).toBe(0);
    const f = new StatsSampler({ names: () => Promise.reject(new Error('gone')), read: () => undefined }, 2000);
    await expect(f.sample()).resolves.toBeUndefined();
  });
});
