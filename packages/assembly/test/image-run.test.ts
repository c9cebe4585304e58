/**
 * `nspawn -i/--image=` as root on the real kernel, through the nspawn binary. systemd-nspawn 252 refuses -i on this
 * host (no udev), so the reference is the same tree under `-D`: what the container sees (its mounts, /etc/os-release,
 * writability) must be the same. Every way out (exit, failure, SIGTERM, kill -9 of nspawn) leaves no loop device
 * (`losetup -l`), no mount and no lock; the hostile images are refused in one line, also leaving no loop device.
 */
import { writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImageFixture, NATIVE, nspawn, type Result, TYPES } from './image-fixture.js';
import { requireRoot } from './helpers.js';

requireRoot();

/** what a container sees: its mount points with their read-only state, os-release, whether / is writable */
const PROBE = [
  '/bin/sh',
  '-c',
  [
    'echo "--- mounts"',
    // mount point and whether it is read-only (fields 5 and 6 of mountinfo), without the sources (loop vs bind)
    "while read -r id p maj root mp opts rest; do echo \"$mp ${opts%%,*}\"; done < /proc/self/mountinfo",
    'echo "--- os-release"',
    'cat /etc/os-release',
    'echo "--- write"',
    'if touch /probe-write 2>/dev/null; then echo writable; rm -f /probe-write; else echo read-only; fi',
  ].join('; '),
];

let fx: ImageFixture;
let tree: string;
let image: string;

beforeAll(() => {
  fx = new ImageFixture();
  tree = fx.tree();
  image = fx.simple('busybox.raw', tree);
});

afterAll(async () => {
  expect(await fx.finish()).toEqual({ loops: [], mounts: [] });
});

describe('nspawn -i compared with -D on the same tree', () => {
  for (const extra of [[], ['--read-only']] as const) {
    it(`sees the same mounts, os-release and writability ${extra.join(' ') || '(writable)'}`, async () => {
      const d = await nspawn([...extra, '-D', tree, ...PROBE]);
      const i = await nspawn([...extra, '-i', image, ...PROBE]);
      expect(d.code).toBe(0);
      expect({ code: i.code, err: i.err }).toEqual({ code: 0, err: '' });
      expect(i.out).toBe(d.out);
      expect(i.out).toContain('NAME="BusyBox"');
      expect(i.out).toContain(extra.length ? '\nread-only\n' : '\nwritable\n');
      expect(await fx.noLoopsLeft()).toEqual([]);
    });
  }

  it('writes a writable image and leaves -x images byte-identical, with the writes visible inside only', async () => {
    const copy = fx.simple('ephemeral.raw', tree);
    const before = fx.sha256(copy);
    const r = await nspawn(['-x', '-i', copy, '/bin/sh', '-c', 'echo data > /etc/new-file && cat /etc/new-file && echo x >> /etc/os-release && grep -c . /etc/os-release']);
    expect({ code: r.code, err: r.err }).toEqual({ code: 0, err: '' });
    expect(r.out.split('\n')[0]).toBe('data');
    expect(fx.sha256(copy)).toBe(before);
    const again = await nspawn(['-i', copy, '/bin/sh', '-c', 'test -e /etc/new-file && echo present || echo absent']);
    expect(again.out).toBe('absent\n');
    expect(await fx.noLoopsLeft()).toEqual([]);
    // and a plain run writes it
    const w = await nspawn(['-i', copy, '/bin/sh', '-c', 'echo kept > /etc/kept']);
    expect(w.code).toBe(0);
    const r2 = await nspawn(['--read-only', '-i', copy, '/bin/cat', '/etc/kept']);
    expect(r2.out).toBe('kept\n');
    expect(fx.sha256(copy)).not.toBe(before);
  });

  it('passes the exit status and names the machine after the image (without .raw)', async () => {
    const r = await nspawn(['-i', image, '/bin/sh', '-c', 'hostname; exit 7']);
    expect(r.code).toBe(7);
    expect(r.out).toBe('busybox\n');
  });

  it('boots an image with -b', async () => {
    const bootTree = fx.tree('boot-tree');
    writeFileSync(`${bootTree}/etc/inittab`, '::sysinit:/bin/echo booted from the image\n::once:/sbin/poweroff\n::shutdown:/bin/sync\n');
    const img = fx.simple('boot.raw', bootTree);
    const r = await nspawn(['-i', img, '-b']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('booted from the image');
    expect(await fx.noLoopsLeft()).toEqual([]);
  });

  it('reads NAME.nspawn beside the image (untrusted: [Exec] Environment= applies)', async () => {
    const img = fx.simple('withsettings.raw', tree);
    writeFileSync(`${dirname(img)}/withsettings.nspawn`, '[Exec]\nEnvironment=FROM_SETTINGS=beside-the-image\n');
    const r = await nspawn(['-i', img, '/bin/sh', '-c', 'echo $FROM_SETTINGS']);
    expect({ code: r.code, out: r.out }).toEqual({ code: 0, out: 'beside-the-image\n' });
  });

  it('mounts a separate /usr partition', async () => {
    const { execFileSync } = await import('node:child_process');
    const rootOnly = fx.path('split-root');
    execFileSync('cp', ['-a', tree, rootOnly]);
    execFileSync('find', [`${rootOnly}/usr`, '-mindepth', '1', '-delete']);
    const img = fx.image('split.raw', [
      { type: NATIVE.root, size: 16, tree: rootOnly },
      { type: NATIVE.usr, size: 32, tree: `${tree}/usr` },
    ]);
    const r = await nspawn(['-i', img, '/bin/sh', '-c', 'grep ^ID= /usr/lib/os-release; grep -c " /usr " /proc/self/mountinfo']);
    expect({ code: r.code, err: r.err, out: r.out }).toEqual({ code: 0, err: '', out: 'ID=busybox\n1\n' });
  });
});

describe('every way out leaves no loop device, mount or lock', () => {
  // handed over (the helper in nspawn's place holds the loop devices) and supervised (Node holds them)
  for (const [how, handoff] of [['SIGTERM', '1'], ['SIGKILL', '1'], ['SIGTERM', '0'], ['SIGKILL', '0']] as const) {
    it(`${how} of nspawn (${handoff === '1' ? 'handed over' : 'supervised'})`, async () => {
      let loopsWhileRunning = -1;
      const r = await nspawn(['-i', image, '/bin/sh', '-c', 'echo READY; exec sleep 60'], (pid) => {
        loopsWhileRunning = fx.loops().length;
        process.kill(pid, how);
      }, { ...process.env, NSPAWN_HANDOFF: handoff });
      expect(loopsWhileRunning).toBe(1);
      if (how === 'SIGKILL') expect(r.signal).toBe('SIGKILL');
      expect(await fx.noLoopsLeft()).toEqual([]);
      expect(fx.mounts()).toEqual([]);
      // the lock went with it: the image starts again
      const again = await nspawn(['-i', image, '/bin/true']);
      expect({ code: again.code, err: again.err }).toEqual({ code: 0, err: '' });
    });
  }

  it('a failing payload', async () => {
    const r = await nspawn(['-i', image, '/bin/does-not-exist']);
    expect(r.code).not.toBe(0);
    expect(r.err).toContain('/bin/does-not-exist');
    expect(await fx.noLoopsLeft()).toEqual([]);
  });

  it('refuses an image in use, and the first run goes on', async () => {
    let second: Result | undefined;
    let loopsWhileBusy: string[] = [];
    const first = await nspawn(['-i', image, '/bin/sh', '-c', 'echo READY; sleep 3; echo first-done'], () => {
      // (another machine name: the same one would be refused first for its cgroup scope)
      void nspawn(['-M', 'im-run-second', '-i', image, '/bin/true']).then((r) => {
        second = r;
        loopsWhileBusy = fx.loops();
      });
    });
    expect(first.code).toBe(0);
    expect(first.out).toContain('first-done');
    expect(second).toEqual({ code: 1, signal: null, out: '', err: `Disk image ${image} is currently busy.\n` });
    expect(loopsWhileBusy.length).toBe(1); // only the first run's
    expect(await fx.noLoopsLeft()).toEqual([]);
  });
});

describe('bad images: one line naming the image, exit 1, no loop device', () => {
  const refused = async (img: string, pattern: RegExp, args: string[] = []) => {
    const r = await nspawn([...args, '-i', img, '/bin/true']);
    expect({ code: r.code, out: r.out }).toEqual({ code: 1, out: '' });
    expect(r.err.trimEnd().split('\n')).toHaveLength(1);
    expect(r.err).toMatch(pattern);
    expect(r.err).toContain(img);
    expect(fx.loops()).toEqual([]);
    return r.err;
  };

  it('a 0-byte image', async () => {
    const img = fx.path('empty.raw');
    writeFileSync(img, '');
    await refused(img, /Couldn't identify a suitable partition table or file system/);
  });

  it('a corrupt GPT (both headers)', async () => {
    const img = fx.simple('corrupt.raw', tree);
    const size = (await import('node:fs')).statSync(img).size;
    fx.poke(img, 512 + 16, Buffer.from([0xde, 0xad, 0xbe, 0xef])); // the primary header's CRC
    fx.poke(img, size - 512 + 16, Buffer.from([0xde, 0xad, 0xbe, 0xef])); // the backup's
    await refused(img, /GPT|partition table/);
  });

  it('headers that lie with matching CRCs (an absurd entry count)', async () => {
    const img = fx.simple('lying.raw', tree);
    fx.rewriteGpt(img, { header: (h) => h.writeUInt32LE(1_000_000, 80) });
    await refused(img, /entries|entry/);
  });

  it('overlapping partitions', async () => {
    const img = fx.image('overlap.raw', [
      { type: NATIVE.root, size: 16, tree },
      { type: TYPES.home, size: 16 },
    ]);
    // the second entry starts inside the first
    fx.rewriteGpt(img, { entry: (e, i) => (i === 1 ? e.writeBigUInt64LE(e.readBigUInt64LE(32) - 1024n, 32) : undefined) });
    await refused(img, /overlap/);
  });

  it('no root partition', async () => {
    const img = fx.image('noroot.raw', [{ type: TYPES.home, size: 16, tree }]);
    await refused(img, /No suitable root partition found in image/);
  });

  it('a root of another architecture: used, as systemd 252 does, with a one-line notice', async () => {
    const img = fx.image('arch.raw', [{ type: NATIVE.foreignRoot, size: 32, tree }]);
    // (the busybox in it is this machine's, so it runs; a foreign binary would fail with "Exec format error")
    const r = await nspawn(['-i', img, '/bin/true']);
    expect(r.code).toBe(0);
    expect(r.err).toMatch(new RegExp(`^${img}: the root partition is for architecture [a-z0-9-]+, not this machine's [a-z0-9-]+; its programs may fail to execute \\(Exec format error\\)\\.\\n$`));
  });

  it('--image-policy= refusals (systemd 254 grammar)', async () => {
    await refused(image, /policy/i, ['--image-policy=root=absent']);
    const bad = await nspawn(['--image-policy=frobnicate', '-i', image, '/bin/true']);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/frobnicate/);
    const ok = await nspawn(['--image-policy=root=unprotected+absent', '-i', image, '/bin/true']);
    expect({ code: ok.code, err: ok.err }).toEqual({ code: 0, err: '' });
  });

  it('a missing image file', async () => {
    const r = await nspawn(['-i', fx.path('missing.raw'), '/bin/true']);
    expect(r).toEqual({ code: 1, signal: null, out: '', err: `Failed to resolve path ${fx.path('missing.raw')}: No such file or directory\n` });
  });
});
