/**
 * Bind mount options side by side with systemd-nspawn 252: it takes any option string when it reads --bind= or a
 * .nspawn file's Bind= (bind_mount_parse()), and reads the options only when it mounts (parse_mount_bind_options()),
 * where a bad one fails the start: "Invalid bind mount option: X". Both tools must take and refuse the same strings,
 * with the same words, and leave the tree alone.
 *
 * Needs root and /usr/bin/systemd-nspawn; it fails, never skips, without them.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxTree } from './helpers/busybox-tree.js';
import { makeTempDir, mountsUnder, requireRootAndSystemdNspawn, runTool, type Tool, TOOL_ENV, TOOLS } from './helpers/containers.js';

let tmp: { dir: string; remove: () => string[] };
let tree: string;
let src: string;
const name = `nt-bindopt-${process.pid}`;

beforeAll(() => {
  requireRootAndSystemdNspawn();
  tmp = makeTempDir('nt-bindopt-');
  tree = makeBusyboxTree(join(tmp.dir, name), { probe: false });
  src = join(tmp.dir, 'src');
  mkdirSync(src);
  writeFileSync(join(src, 'marker'), 'bound\n');
});
afterAll(() => {
  expect(mountsUnder(tmp.dir)).toEqual([]);
  expect(tmp.remove()).toEqual([]);
});

const stderrLines = (s: string) => s.split('\n').filter((l) => l !== '' && !l.startsWith('Attempted to remove disk file system'));

async function both(args: string[]): Promise<Record<Tool, { status: number | null; out: string; err: string[] }>> {
  const seen = {} as Record<Tool, { status: number | null; out: string; err: string[] }>;
  for (const tool of TOOLS) {
    const r = await runTool(tool, ['-q', '-D', tree, '-M', name, ...args, '/bin/cat', '/mnt/marker'], { env: TOOL_ENV });
    seen[tool] = { status: r.status, out: r.stdout.replace(/\r\n/g, '\n'), err: stderrLines(r.stderr) };
  }
  return seen;
}

describe('bind mount options are read when mounting, as in 252', () => {
  for (const [options, refused] of [
    ['norbind', undefined],
    ['rbind,,norbind', undefined],
    [',', undefined],
    ['bogus', 'bogus'],
    ['rbind,bogus', 'bogus'],
    ['"x"', '"x"'],
  ] as const) {
    it(`--bind=SRC:/mnt:${options}`, async () => {
      const seen = await both([`--bind=${src}:/mnt:${options}`]);
      if (refused === undefined) {
        for (const tool of TOOLS) expect(seen[tool], tool).toMatchObject({ status: 0, out: 'bound\n' });
      } else {
        for (const tool of TOOLS) expect(seen[tool], tool).toEqual({ status: 1, out: '', err: [`Invalid bind mount option: ${refused}`] });
      }
    });
  }

  it('Bind= in a trusted .nspawn file: read without a word, refused at the start alike', async () => {
    const file = `/run/systemd/nspawn/${name}.nspawn`;
    mkdirSync('/run/systemd/nspawn', { recursive: true });
    writeFileSync(file, `[Files]\nBind=${src}:/mnt:rbind,bogus\n`);
    try {
      const seen = await both([]);
      for (const tool of TOOLS) expect(seen[tool], tool).toEqual({ status: 1, out: '', err: ['Invalid bind mount option: bogus'] });
    } finally {
      rmSync(file, { force: true });
    }
  });
});
