import { describe, expect, it } from 'vitest';
import { SampleRing } from './ring.js';

const s = (t: number, cpu: number | null = t, memory: number | null = t * 10, tasks: number | null = 1) => ({ t, cpu, memory, tasks });

describe('SampleRing', () => {
  it('keeps samples oldest first, times in seconds, nulls as nulls', () => {
    const r = new SampleRing(4);
    expect(r.size).toBe(0);
    expect(r.last()).toBeUndefined();
    expect(r.columns()).toEqual({ t: [], cpu: [], memory: [], tasks: [] });
    r.push(s(1000, null));
    r.push(s(2000, 5, null, null));
    expect(r.size).toBe(2);
    expect(r.columns()).toEqual({ t: [1, 2], cpu: [null, 5], memory: [10000, null], tasks: [1, null] });
    expect(r.last()).toEqual({ t: 2000, cpu: 5, memory: null, tasks: null });
  });
  it('never holds more than its capacity: the oldest go, in order, however many come', () => {
    const r = new SampleRing(3);
    for (let i = 1; i <= 10; i++) r.push(s(i * 1000));
    expect(r.size).toBe(3);
    expect(r.columns().t).toEqual([8, 9, 10]);
    expect(r.columns().cpu).toEqual([8000, 9000, 10000]);
    expect(r.last()!.t).toBe(10000);
    for (let i = 11; i <= 1000; i++) r.push(s(i * 1000));
    expect(r.columns().t).toEqual([998, 999, 1000]);
  });
  it('has a positive integer capacity', () => {
    expect(() => new SampleRing(0)).toThrow(/positive integer/);
    expect(() => new SampleRing(1.5)).toThrow(/positive integer/);
    const one = new SampleRing(1);
    one.push(s(1000));
    one.push(s(2000));
    expect(one.columns().t).toEqual([2]);
  });
});
