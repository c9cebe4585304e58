import type { MountStep } from '@nspawn/image';
import { describe, expect, it } from 'vitest';
import { imageStepsToWire } from './image.js';

const dev = { path: '/dev/loop9', offset: 0, size: 1 };
const mount = (partition: 'root' | 'usr' | 'home' | 'var', target: string, idmap = false): MountStep => ({
  op: 'mount',
  partition,
  device: dev,
  fstype: 'ext4',
  target,
  flags: 0,
  data: 'discard',
  mkdir: target !== '',
  ...(idmap ? { idmap: true } : {}),
});

describe('imageStepsToWire', () => {
  it('puts the barrier after the root and /usr (systemd 252: the other partitions after --pivot-root= and --volatile=)', () => {
    const w = imageStepsToWire([mount('root', ''), mount('usr', 'usr', true), mount('home', 'home'), mount('var', 'var')]);
    expect(w.map((s) => `${s.op}:${s.target}`)).toEqual(['mount:', 'mount:usr', 'barrier:', 'mount:home', 'mount:var']);
    expect(w[1]).toMatchObject({ source: '/dev/loop9', fstype: 'ext4', idmap: true });
    expect(w[0]!.idmap).toBeUndefined();
  });
  it('at the end when there is nothing else, or after all of -x\'s overlays', () => {
    expect(imageStepsToWire([mount('root', '')]).map((s) => s.op)).toEqual(['mount', 'barrier']);
    const x: MountStep[] = [
      { op: 'tmpfs', source: 'nspawn-image-ephemeral', target: '', flags: 0, data: 'mode=0755' },
      mount('root', 'lower/root'),
      mount('home', 'lower/home'),
      { op: 'overlay', partition: 'root', target: 'root', lower: 'lower/root', upper: 'upper/root', work: 'work/root', flags: 0, mkdir: false },
      { op: 'overlay', partition: 'home', target: 'root/home', lower: 'lower/home', upper: 'upper/home', work: 'work/home', flags: 0, mkdir: true },
      { op: 'move', from: 'root', target: '' },
    ];
    expect(imageStepsToWire(x).map((s) => s.op)).toEqual(['tmpfs', 'mount', 'mount', 'overlay', 'overlay', 'move', 'barrier']);
  });
});
