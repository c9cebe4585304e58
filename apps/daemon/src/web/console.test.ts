import { appendFileSync, closeSync, mkdtempSync, openSync, renameSync, rmSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CHUNK_MAX, type LogEvent, LogHub, TAIL_BYTES, tailFile } from './console.js';

let dir = '';
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'dm-web-console-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('tailFile', () => {
  it('reads only the end of a huge log, from a line start', () => {
    const p = join(dir, 'huge.log');
    // 8 GiB, sparse: loading it whole would fail; the tail reads 64 KiB
    closeSync(openSync(p, 'w'));
    truncateSync(p, 8 * 1024 ** 3);
    const lines = Array.from({ length: 2000 }, (_, i) => `line ${String(i).padStart(4, '0')} ${'.'.repeat(90)}\n`).join('');
    appendFileSync(p, lines);
    const t = tailFile(p)!;
    expect(t.text.endsWith(`line 1999 ${'.'.repeat(90)}\n`)).toBe(true);
    expect(t.text).toMatch(/^line \d{4} /); // whole lines only
    expect(t.text.length).toBeLessThanOrEqual(TAIL_BYTES);
    expect(t.text.length).toBeGreaterThan(TAIL_BYTES - 200);
    expect(t.end).toBe(8 * 1024 ** 3 + lines.length);
    expect(t.skipped + t.text.length).toBe(t.end);
  });
  it('gives a small log whole, and nothing for a missing one', () => {
    const p = join(dir, 'small.log');
    writeFileSync(p, 'a\nb\n');
    expect(tailFile(p)).toEqual({ text: 'a\nb\n', end: 4, skipped: 0 });
    expect(tailFile(join(dir, 'none.log'))).toBeUndefined();
  });
});

describe('LogHub', () => {
  const collect = () => {
    const events: LogEvent[] = [];
    return { events, fn: (e: LogEvent) => events.push(e) };
  };

  it('gives each watcher the tail, then what is appended, once, however many watch', async () => {
    const p = join(dir, 'm.log');
    writeFileSync(p, 'boot\n');
    const hub = new LogHub(20);
    const a = collect();
    const wa = hub.watch(p, a.fn);
    expect(wa.tail).toEqual({ text: 'boot\n', skipped: 0 });
    appendFileSync(p, 'one\n');
    const b = collect();
    const wb = hub.watch(p, b.fn);
    // b's tail ends where a's appends are: no line twice
    expect(wb.tail!.text).toBe('boot\none\n');
    expect(a.events).toEqual([{ kind: 'append', text: 'one\n' }]);
    appendFileSync(p, 'two\n');
    await new Promise((r) => setTimeout(r, 100));
    expect(a.events).toEqual([{ kind: 'append', text: 'one\n' }, { kind: 'append', text: 'two\n' }]);
    expect(b.events).toEqual([{ kind: 'append', text: 'two\n' }]);
    expect(hub.watched).toBe(1);
    wa.stop();
    wb.stop();
    expect(hub.watched).toBe(0);
    hub.close();
  });

  it('starts again after a copytruncate rotation and after a new file', async () => {
    const p = join(dir, 'r.log');
    writeFileSync(p, 'old old old\n');
    const hub = new LogHub(20);
    const a = collect();
    const w = hub.watch(p, a.fn);
    truncateSync(p, 0);
    appendFileSync(p, 'new\n');
    await new Promise((r) => setTimeout(r, 100));
    expect(a.events).toEqual([{ kind: 'reset', text: '', skipped: 0 }, { kind: 'append', text: 'new\n' }]);
    renameSync(p, `${p}.1`);
    writeFileSync(p, 'fresh\n');
    await new Promise((r) => setTimeout(r, 100));
    expect(a.events.slice(2)).toEqual([{ kind: 'reset', text: '', skipped: 0 }, { kind: 'append', text: 'fresh\n' }]);
    w.stop();
    hub.close();
  });

  it('skips a burst larger than a poll carries to its last lines, and waits for a log that is not there yet', async () => {
    const p = join(dir, 'b.log');
    const hub = new LogHub(20);
    const a = collect();
    const w = hub.watch(p, a.fn);
    expect(w.tail).toBeUndefined();
    const fd = openSync(p, 'a');
    writeSync(fd, `${'x'.repeat(99)}\n`.repeat((CHUNK_MAX * 4) / 100) + 'the end\n');
    closeSync(fd);
    await new Promise((r) => setTimeout(r, 100));
    const last = a.events.at(-1)!;
    expect(last.kind).toBe('reset');
    expect(last.text.endsWith('the end\n')).toBe(true);
    expect(last.text.length).toBeLessThanOrEqual(TAIL_BYTES);
    expect((last as { skipped: number }).skipped).toBeGreaterThan(CHUNK_MAX * 3);
    w.stop();
    hub.close();
  });
});
