/**
 * The last N samples of a machine's CPU, memory and tasks, in one preallocated Float64Array: a bounded ring that
 * never grows, whatever the uptime (10 minutes at one sample every 2 s: 300 samples, 9.6 KB per machine).
 */

/** One sample: when (ms since the epoch), CPU in % of one CPU (null for the first), memory in bytes, tasks. */
export interface Sample {
  t: number;
  cpu: number | null;
  memory: number | null;
  tasks: number | null;
}

const FIELDS = 4;

export class SampleRing {
  private readonly data: Float64Array;
  /** where the next sample goes */
  private next = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity <= 0) throw new RangeError(`capacity must be a positive integer, not ${capacity}`);
    this.data = new Float64Array(capacity * FIELDS);
  }

  get size(): number {
    return this.count;
  }

  push(s: Sample): void {
    const o = this.next * FIELDS;
    this.data[o] = s.t;
    this.data[o + 1] = s.cpu ?? Number.NaN;
    this.data[o + 2] = s.memory ?? Number.NaN;
    this.data[o + 3] = s.tasks ?? Number.NaN;
    this.next = (this.next + 1) % this.capacity;
    if (this.count < this.capacity) this.count++;
  }

  /** The newest sample, or undefined. */
  last(): Sample | undefined {
    if (this.count === 0) return undefined;
    return this.at(this.count - 1);
  }

  /** Sample I, oldest first (0 <= I < size). */
  private at(i: number): Sample {
    const o = ((this.next - this.count + i + this.capacity) % this.capacity) * FIELDS;
    const v = (x: number) => (Number.isNaN(x) ? null : x);
    return { t: this.data[o]!, cpu: v(this.data[o + 1]!), memory: v(this.data[o + 2]!), tasks: v(this.data[o + 3]!) };
  }

  /** Every sample, oldest first, as columns (what a chart takes): times in seconds. */
  columns(): { t: number[]; cpu: Array<number | null>; memory: Array<number | null>; tasks: Array<number | null> } {
    const out = { t: [] as number[], cpu: [] as Array<number | null>, memory: [] as Array<number | null>, tasks: [] as Array<number | null> };
    for (let i = 0; i < this.count; i++) {
      const s = this.at(i);
      out.t.push(s.t / 1000);
      out.cpu.push(s.cpu);
      out.memory.push(s.memory);
      out.tasks.push(s.tasks);
    }
    return out;
  }
}
