/**
 * The CPU, memory and tasks of each running machine over the last 10 minutes, for the view's charts: every
 * INTERVAL the machines nspawnd lists are read from their cgroup (what `nspawnctl top` reads: readMachineStats() of
 * @nspawn/runtime, given by the daemon) into a bounded ring per machine. Machines that are gone lose theirs.
 * Runs only with --web: nobody else reads the history.
 */
import { type Sample, SampleRing } from './ring.js';

/** What readMachineStats() answers for a machine (undefined: no cgroup). */
export interface StatsReading {
  cpuUsageNs: number | undefined;
  memoryBytes: number | undefined;
  tasks: number | undefined;
}

export interface StatsSource {
  /** the running machines' names */
  names(): Promise<string[]>;
  read(name: string): StatsReading | undefined;
}

export const SAMPLE_MS = 2000;
/** 10 minutes of samples */
export const HISTORY_MS = 10 * 60 * 1000;

interface Track {
  ring: SampleRing;
  prev?: { cpuNs: number; t: number };
}

export class StatsSampler {
  private readonly tracks = new Map<string, Track>();
  private readonly listeners = new Set<(name: string, s: Sample) => void>();
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  readonly capacity: number;

  constructor(
    private readonly source: StatsSource,
    readonly intervalMs = SAMPLE_MS,
    private readonly now: () => number = Date.now,
  ) {
    this.capacity = Math.ceil(HISTORY_MS / intervalMs);
  }

  start(): void {
    if (this.timer) return;
    void this.sample();
    this.timer = setInterval(() => void this.sample(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.listeners.clear();
  }

  /** Calls FN with each new sample of any machine; returns how to stop. */
  onSample(fn: (name: string, s: Sample) => void): () => void {
    this.listeners.add(fn);
    return () => void this.listeners.delete(fn);
  }

  /** One round: a sample of every running machine; the tracks of the others are dropped. */
  async sample(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const names = new Set(await this.source.names());
      for (const n of this.tracks.keys()) if (!names.has(n)) this.tracks.delete(n);
      for (const name of names) {
        const r = this.source.read(name);
        if (!r) continue;
        const t = this.now();
        let track = this.tracks.get(name);
        if (!track) this.tracks.set(name, (track = { ring: new SampleRing(this.capacity) }));
        let cpu: number | null = null;
        if (r.cpuUsageNs !== undefined) {
          const p = track.prev;
          if (p && t > p.t && r.cpuUsageNs >= p.cpuNs) cpu = ((r.cpuUsageNs - p.cpuNs) / 1e6 / (t - p.t)) * 100;
          track.prev = { cpuNs: r.cpuUsageNs, t };
        }
        const s: Sample = { t, cpu, memory: r.memoryBytes ?? null, tasks: r.tasks ?? null };
        track.ring.push(s);
        for (const l of this.listeners) l(name, s);
      }
    } catch {
      // nspawnd answers next time
    } finally {
      this.busy = false;
    }
  }

  latest(name: string): Sample | undefined {
    return this.tracks.get(name)?.ring.last();
  }

  history(name: string): ReturnType<SampleRing['columns']> {
    return this.tracks.get(name)?.ring.columns() ?? { t: [], cpu: [], memory: [], tasks: [] };
  }

  /** how many machines have a history */
  get machines(): number {
    return this.tracks.size;
  }
}
