/**
 * `nspawn -i` with `-U`/`--private-users=`, `--volatile=`, `--pivot-root=` and `-x -U`, as root on the real kernel,
 * through the nspawn binary. systemd-nspawn 252 refuses -i on this host (no udev), so the reference is the same tree
 * under `-D` with the same flags (apps/cli/test/compare-*.test.ts hold `-D` against 252 itself): what the container
 * sees must be the same, refusals included. The image stays byte-identical when read-only, volatile or under -x;
 * every way out (exit, SIGTERM, kill -9 of nspawn, handed over or supervised) leaves no loop device, mount, held
 * range lock or snapshot.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pickRange } from '@nspawn/uidrange';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImageFixture, NATIVE, nspawn, type Result } from './image-fixture.js';
import { requireRoot } from './helpers.js';

requireRoot();

const sh = (script: string) => ['/bin/sh', '-c', script];

/** stderr with the container's root made generic: DIR (-D) and /run/nspawn/image-root (-i) are both ROOT */
const errOf = (r: Result, dir: string) => r.err.split(dir).join('ROOT').split('/run/nspawn/image-root').join('ROOT');

/** the user namespace as the container sees it: its map's shape (the base made generic), owners, a new file's owner */
const USERNS_PROBE = sh(
  [
    'read -r inside base count < /proc/self/uid_map; echo "map $inside $([ "$base" -gt 0 ] && echo BASE || echo $base) $count"',
    'echo "owners $(stat -c "%u:%g" / /etc/passwd /bin/busybox | tr "\\n" " ")"',
    'if touch /probe-new 2>/dev/null; then echo "new $(stat -c %u:%g /probe-new)"; rm -f /probe-new; else echo "new read-only"; fi',
    // the root mount is idmapped (-D: the tree's bind; -i: the partition), or not
    'grep -q " / [^ ]*idmapped" /proc/self/mountinfo && echo "root idmapped" || echo "root plain"',
  ].join('; '),
);

/** the volatile layout: the mounts at /, /usr and /var (type and read-only state), which writes succeed, the root */
const VOLATILE_PROBE = sh(
  [
    'while read -r id p maj root mp opts rest; do',
    '  case "$mp" in /|/usr|/var) t=${rest#*- }; t=${t%% *}; case "$t" in tmpfs|overlay) ;; *) t=fs;; esac; echo "$mp $t ${opts%%,*}";; esac',
    'done < /proc/self/mountinfo',
    'for f in /new-file /etc/new-file /var/new-file /usr/new-file; do',
    '  if ( echo x > $f ) 2>/dev/null; then echo "$f writable"; else echo "$f read-only"; fi',
    'done',
    'ls -1 /',
  ].join('\n'),
);

let fx: ImageFixture;
let tree: string;
let merged: string;

/** the busybox tree with /bin and /sbin merged into /usr (what --volatile=yes needs) */
function mergeUsr(dir: string): void {
  for (const d of ['bin', 'sbin']) {
    execFileSync('cp', ['-a', `${dir}/${d}/.`, `${dir}/usr/${d}/`]);
    rmSync(join(dir, d), { recursive: true });
    symlinkSync(`usr/${d}`, join(dir, d));
  }
}

beforeAll(() => {
  fx = new ImageFixture();
  tree = fx.tree();
  merged = fx.tree('merged');
  mergeUsr(merged);
});

afterAll(async () => {
  expect(await fx.finish()).toEqual({ loops: [], mounts: [] });
});

/** a fresh copy of TREE and an image made of another copy (so that writes by one run never reach the other) */
function pair(name: string, from = tree): { dir: string; image: string } {
  // (the machine names come from these: im-cb-* is ours alone on a machine shared with other test runs)
  const dir = fx.path(`im-cb-${name}-tree`);
  execFileSync('cp', ['-a', from, dir]);
  return { dir, image: fx.simple(`im-cb-${name}.raw`, from) };
}

/** the range lock file of BASE is held by some open file description (/proc/locks) */
function rangeLockHeld(base: number): boolean {
  const p = `/run/systemd/nspawn-uid/${base}`;
  if (!existsSync(p)) return false;
  const ino = statSync(p).ino;
  return readFileSync('/proc/locks', 'utf8')
    .split('\n')
    .some((l) => l.split(/\s+/).some((f) => f.endsWith(`:${ino}`)));
}

const baseOf = (out: string): number => {
  const m = /^\s*0\s+(\d+)\s+65536$/m.exec(out);
  if (!m) throw new Error(`no uid_map line in: ${out}`);
  return Number(m[1]);
};

describe('-U on an image as on the same tree with -D', () => {
  it('-U (pick, ownership auto): the partition idmapped, the files the container\'s root\'s, new files 0 on disk', async () => {
    const { dir, image } = pair('userns');
    const d = await nspawn(['-M', 'im-cb-u', '-U', '-D', dir, ...USERNS_PROBE]);
    const i = await nspawn(['-M', 'im-cb-u', '-U', '-i', image, ...USERNS_PROBE]);
    expect({ code: d.code, err: d.err }).toEqual({ code: 0, err: '' });
    expect({ code: i.code, err: i.err }).toEqual({ code: 0, err: '' });
    expect(i.out).toBe(d.out);
    expect(i.out).toBe('map 0 BASE 65536\nowners 0:0 0:0 0:0 \nnew 0:0\nroot idmapped\n');
    // what the container wrote is stored unshifted, as with the -D tree: the image is not chowned
    const after = await nspawn(['--read-only', '-i', image, ...sh('touch /x 2>/dev/null; stat -c %u:%g /etc/passwd')]);
    expect({ code: after.code, out: after.out }, after.err).toEqual({ code: 0, out: '0:0\n' });
    expect(await fx.noLoopsLeft()).toEqual([]);
  });

  for (const extra of [['--read-only'], ['-x']]) {
    it(`${extra[0]} -U: the same view, and the image byte-identical`, async () => {
      const { dir, image } = pair(`userns${extra[0]}`);
      const before = fx.sha256(image);
      const d = await nspawn([...extra, '-U', '-D', dir, ...USERNS_PROBE]);
      const i = await nspawn([...extra, '-U', '-i', image, ...USERNS_PROBE]);
      // (a read-only root lacks the mount points of /etc/localtime and /etc/resolv.conf: 252's warnings, alike)
      expect({ code: i.code, err: errOf(i, dir) }).toEqual({ code: 0, err: errOf(d, dir) });
      expect(i.out).toBe(d.out);
      expect(i.out).toContain(extra[0] === '-x' ? 'new 0:0' : 'new read-only');
      expect(fx.sha256(image)).toBe(before);
      expect(await fx.noLoopsLeft()).toEqual([]);
    });
  }

  it('-x -U with $NSPAWN_EPHEMERAL=copy (systemd\'s copy): the same, no copy left beside the image', async () => {
    const { image } = pair('usernscopy');
    const before = fx.sha256(image);
    const i = await nspawn(['-x', '-U', '-i', image, ...USERNS_PROBE], undefined, { ...process.env, NSPAWN_EPHEMERAL: 'copy' });
    expect({ code: i.code, err: i.err }).toEqual({ code: 0, err: '' });
    expect(i.out).toBe('map 0 BASE 65536\nowners 0:0 0:0 0:0 \nnew 0:0\nroot idmapped\n');
    expect(fx.sha256(image)).toBe(before);
    expect(readdirSync(fx.dir).filter((f) => f.startsWith('.#'))).toEqual([]);
  });

  it('--private-users=N without an ownership mode (off): the files show as nobody, as under -D', async () => {
    const { dir, image } = pair('fixed');
    const probe = sh('stat -c %u:%g /etc/passwd; cat /proc/self/uid_map');
    const d = await nspawn(['--private-users=1879048192:65536', '-D', dir, ...probe]);
    const i = await nspawn(['--private-users=1879048192:65536', '-i', image, ...probe]);
    // (nobody's /etc takes no mount point for /etc/localtime: 252's warning, alike)
    expect({ code: i.code, err: errOf(i, dir) }).toEqual({ code: 0, err: errOf(d, dir) });
    expect(i.out).toBe(d.out);
    expect(i.out).toMatch(/^65534:65534\n\s+0\s+1879048192\s+65536\n$/);
  });

  it('--private-users-ownership=chown chowns the image as 252 chowns its mounted image, and the tree with -D', async () => {
    const { dir, image } = pair('chown');
    const args = ['--private-users=536870912:65536', '--private-users-ownership=chown'];
    const probe = sh('stat -c %u:%g /etc/passwd');
    const d = await nspawn([...args, '-D', dir, ...probe]);
    const i = await nspawn([...args, '-i', image, ...probe]);
    expect({ code: i.code, err: i.err }).toEqual({ code: 0, err: '' });
    expect(i.out).toBe(d.out);
    expect(i.out).toBe('0:0\n');
    expect(statSync(join(dir, 'etc/passwd')).uid).toBe(536870912);
    // on disk: the range's owners (seen from a run without a user namespace)
    const after = await nspawn(['--read-only', '-i', image, ...sh('stat -c %u:%g /etc/passwd /')]);
    expect(after.out).toBe('536870912:536870912\n536870912:536870912\n');
    // a shifted image is mapped no more: -U reads the range off it (determine_uid_shift()), picks it first and, as it
    // carries it already, chowns nothing
    const again = await nspawn(['-U', '-i', image, ...sh('cat /proc/self/uid_map; stat -c %u:%g /etc/passwd')]);
    expect({ code: again.code, err: again.err }).toEqual({ code: 0, err: '' });
    expect(again.out).toMatch(/^\s+0\s+536870912\s+65536\n0:0\n$/);
    // and ownership map refuses it with 252's words, naming the image as -D names the tree
    const dm = await nspawn(['-U', '--private-users-ownership=map', '-D', dir, '/bin/true']);
    const im = await nspawn(['-U', '--private-users-ownership=map', '-i', image, '/bin/true']);
    expect(dm).toMatchObject({ code: 1, err: `UID base of ${dir} is not zero, UID mapping not supported.\n` });
    expect(im).toMatchObject({ code: 1, err: `UID base of ${image} is not zero, UID mapping not supported.\n` });
    expect(await fx.noLoopsLeft()).toEqual([]);
  });

  it('-U on a shifted image whose range is taken: chowned into another (auto falls back to chown), refused on -x\'s overlay', async () => {
    const { image } = pair('taken');
    const shifted = ['--private-users=805306368:65536', '--private-users-ownership=chown'];
    expect((await nspawn([...shifted, '-i', image, '/bin/true'])).code).toBe(0);
    // the image's own range held by someone else: pick takes another, and the image must be chowned into it
    const held = pickRange({ first: 805306368 });
    try {
      expect(held.base).toBe(805306368);
      const before = fx.sha256(image);
      const x = await nspawn(['-x', '-U', '-i', image, '/bin/true']);
      expect(x).toMatchObject({
        code: 1,
        err: `${image}: changing the owner of its files (--private-users-ownership=chown) is not possible on -x's overlay; NSPAWN_EPHEMERAL=copy runs -x on a copy of the image as systemd does.\n`,
      });
      expect(fx.sha256(image)).toBe(before);
      const copy = await nspawn(['-x', '-U', '-i', image, ...sh('stat -c %u:%g /etc/passwd')], undefined, { ...process.env, NSPAWN_EPHEMERAL: 'copy' });
      expect({ code: copy.code, err: copy.err, out: copy.out }).toEqual({ code: 0, err: '', out: '0:0\n' });
      expect(fx.sha256(image)).toBe(before);
      const w = await nspawn(['-U', '-i', image, ...sh('stat -c %u:%g /etc/passwd; cat /proc/self/uid_map')]);
      expect({ code: w.code, err: w.err }).toEqual({ code: 0, err: '' });
      const base = baseOf(w.out);
      expect(base).not.toBe(805306368);
      expect(w.out.split('\n')[0]).toBe('0:0');
      const after = await nspawn(['--read-only', '-i', image, ...sh('stat -c %u /etc/passwd')]);
      expect(after.out).toBe(`${base}\n`);
    } finally {
      held.release();
    }
    expect(await fx.noLoopsLeft()).toEqual([]);
  });

  it('-x with chown runs on systemd\'s copy: chowned there, the image byte-identical', async () => {
    const { image } = pair('chownx');
    const before = fx.sha256(image);
    const i = await nspawn(['-x', '--private-users=1879048192:65536', '--private-users-ownership=chown', '-i', image, ...sh('stat -c %u:%g /etc/passwd')]);
    expect({ code: i.code, err: i.err, out: i.out }).toEqual({ code: 0, err: '', out: '0:0\n' });
    expect(fx.sha256(image)).toBe(before);
    expect(readdirSync(fx.dir).filter((f) => f.startsWith('.#'))).toEqual([]);
  });

  it('252\'s refusals, in its words, as with -D', async () => {
    const { dir, image } = pair('refusals');
    const before = fx.sha256(image);
    for (const [args, message] of [
      [['--read-only', '-U', '--private-users-ownership=chown'], '--read-only and --private-users-ownership=chown may not be combined.'],
      [['--volatile=overlay', '-U', '--private-users-ownership=chown'], '--read-only and --private-users-ownership=chown may not be combined.'],
    ] as const) {
      const d = await nspawn([...args, '-D', dir, '/bin/true']);
      const i = await nspawn([...args, '-i', image, '/bin/true']);
      expect(d, args.join(' ')).toMatchObject({ code: 1, err: `${message}\n` });
      expect(i, args.join(' ')).toMatchObject({ code: 1, err: `${message}\n` });
    }
    expect(fx.sha256(image)).toBe(before);
    expect(await fx.noLoopsLeft()).toEqual([]);
  });
});

describe('an image with a /usr partition of its own', () => {
  it('-U idmaps both partitions (252 fails here: its root remount has /usr below it), and --volatile=yes -U too', async () => {
    const rootOnly = fx.path('split-root');
    execFileSync('cp', ['-a', merged, rootOnly]);
    execFileSync('find', [`${rootOnly}/usr`, '-mindepth', '1', '-delete']);
    const img = fx.image('im-cb-split-u.raw', [
      { type: NATIVE.root, size: 16, tree: rootOnly },
      { type: NATIVE.usr, size: 32, tree: `${merged}/usr` },
    ]);
    const before = fx.sha256(img);
    const probe = sh(
      'awk \'$5=="/"||$5=="/usr"{o=$6; sub(/,.*/,"",o); print $5, o, ($6 ~ /idmapped/ ? "idmapped" : "plain")}\' /proc/self/mountinfo; stat -c %u:%g /usr/bin/busybox',
    );
    const u = await nspawn(['-U', '--read-only', '-i', img, ...probe]);
    expect(u.code, u.err).toBe(0);
    expect(u.out).toBe('/ ro idmapped\n/usr ro idmapped\n0:0\n');
    const v = await nspawn(['-U', '--volatile=yes', '-i', img, ...probe]);
    expect(v.code, v.err).toBe(0);
    // (the tmpfs root is the container's root's own: not idmapped)
    expect(v.out).toBe('/ rw plain\n/usr ro idmapped\n0:0\n');
    expect(fx.sha256(img)).toBe(before);
    expect(await fx.noLoopsLeft()).toEqual([]);
  });
});

describe('--volatile= on an image as on the same tree with -D (every mode: read-only image)', () => {
  for (const mode of ['yes', 'state', 'overlay']) {
    for (const userns of [[], ['-U']]) {
      it(`--volatile=${mode} ${userns.join(' ')}`, async () => {
        const { dir, image } = pair(`volatile-${mode}${userns.length ? '-u' : ''}`, merged);
        const before = fx.sha256(image);
        const d = await nspawn([`--volatile=${mode}`, ...userns, '-D', dir, ...VOLATILE_PROBE]);
        const i = await nspawn([`--volatile=${mode}`, ...userns, '-i', image, ...VOLATILE_PROBE]);
        expect(d.code, d.err).toBe(0);
        expect({ code: i.code, err: errOf(i, dir) }).toEqual({ code: 0, err: errOf(d, dir) });
        // (mkfs.ext4 gives the image's root a lost+found the tree lacks)
        expect(i.out.replace('lost+found\n', '')).toBe(d.out);
        expect(i.out).toContain(mode === 'state' ? '/new-file read-only' : '/new-file writable');
        expect(i.out).toContain('/var/new-file writable');
        expect(fx.sha256(image)).toBe(before);
        expect(await fx.noLoopsLeft()).toEqual([]);
      });
    }
  }

  it('--volatile=yes refuses an image without a merged /usr, with 252\'s words, as it refuses such a tree', async () => {
    const { dir, image } = pair('volatile-unmerged');
    const d = await nspawn(['--volatile=yes', '-D', dir, '/bin/true']);
    const i = await nspawn(['--volatile=yes', '-i', image, '/bin/true']);
    expect(d.code).toBe(1);
    expect(i).toMatchObject({ code: 1, err: d.err });
    expect(i.err).toContain('Sorry, --volatile=yes mode is not supported with OS images that have not merged /bin/');
    expect(await fx.noLoopsLeft()).toEqual([]);
  });
});

describe('--pivot-root= on an image as on the same tree with -D', () => {
  let dir: string;
  let image: string;
  beforeAll(() => {
    // an OSTree-like tree: the OS at /srv/os, with /oldroot to take the image
    const holder = fx.path('pivot-src');
    execFileSync('mkdir', ['-p', `${holder}/srv`, `${holder}/usr`, `${holder}/etc`]);
    execFileSync('cp', ['-a', tree, `${holder}/srv/os`]);
    execFileSync('mkdir', ['-p', `${holder}/srv/os/oldroot`]);
    writeFileSync(`${holder}/etc/outer-marker`, 'outer\n');
    ({ dir, image } = pair('pivot', holder));
  });

  const PROBE = sh('ls -1 /; echo ---; ls -1 /oldroot 2>&1 | grep -v lost+found; cat /oldroot/etc/outer-marker 2>&1; echo ---; stat -c %u:%g /bin/busybox');
  for (const flags of [['--pivot-root=/srv/os:/oldroot'], ['--pivot-root=/srv/os'], ['--pivot-root=/srv/os:/oldroot', '-U'], ['--pivot-root=/srv/os:/oldroot', '-x', '-U']]) {
    it(flags.join(' '), async () => {
      const before = fx.sha256(image);
      const d = await nspawn([...flags, '-D', dir, ...PROBE]);
      const i = await nspawn([...flags, '-i', image, ...PROBE]);
      expect({ code: d.code, err: d.err }).toEqual({ code: 0, err: '' });
      expect({ code: i.code, err: i.err }).toEqual({ code: 0, err: '' });
      expect(i.out).toBe(d.out);
      expect(i.out).toContain(flags[0]!.includes(':') ? '---\netc\nsrv\nusr\nouter\n---' : 'No such file or directory');
      if (flags.includes('-x')) expect(fx.sha256(image)).toBe(before);
      expect(await fx.noLoopsLeft()).toEqual([]);
    });
  }

  it('an OLD that NEW lacks fails as with -D (252\'s MS_MOVE message), leaving nothing', async () => {
    const d = await nspawn(['--pivot-root=/srv/os:/missing', '-D', dir, '/bin/true']);
    const i = await nspawn(['--pivot-root=/srv/os:/missing', '-i', image, '/bin/true']);
    expect(d.code).toBe(1);
    expect(i.code).toBe(1);
    expect(i.err).toMatch(/^Failed to mount \/run\/nspawn\/image-root \(type n\/a\) on \/tmp\/nspawn-pivot-\w+\/missing \(MS_MOVE ""\): No such file or directory/);
    expect(d.err).toMatch(/on \/tmp\/nspawn-pivot-\w+\/missing \(MS_MOVE ""\): No such file or directory/);
    expect(await fx.noLoopsLeft()).toEqual([]);
    expect(fx.mounts()).toEqual([]);
  });
});

describe('-b -U -i: an image booted in a user namespace', () => {
  it('boots busybox init with the partition idmapped, and powers off', async () => {
    const bootTree = fx.tree('boot-tree');
    writeFileSync(`${bootTree}/etc/inittab`, '::sysinit:/bin/sh -c "echo booted as $(id -u) on $(grep -c idmapped /proc/self/mountinfo) idmapped mount"\n::once:/sbin/poweroff\n::shutdown:/bin/sync\n');
    const img = fx.simple('im-cb-boot-u.raw', bootTree);
    const r = await nspawn(['-b', '-U', '-i', img]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('booted as 0 on 1 idmapped mount');
    expect(await fx.noLoopsLeft()).toEqual([]);
  });
});

describe('-M NAME finds /var/lib/machines/NAME.raw, as 252\'s image_find() does', () => {
  it('runs it as -i, with -U (what systemd-nspawn@.service and nspawnctl start run)', async () => {
    const name = `im-cb-disc-${process.pid}`;
    const path = `/var/lib/machines/${name}.raw`;
    copyFileSync(fx.simple('disc.raw'), path);
    try {
      const r = await nspawn(['-M', name, '-U', ...sh('hostname; grep -c " / [^ ]*idmapped" /proc/self/mountinfo')]);
      expect({ code: r.code, err: r.err, out: r.out }).toEqual({ code: 0, err: '', out: `${name}\n1\n` });
      // a raw image without write permission runs read-only (image_make()'s read_only), -x aside
      execFileSync('chmod', ['a-w', path]);
      const ro = await nspawn(['-M', name, ...sh('touch /x 2>/dev/null && echo writable || echo read-only')]);
      expect(ro.out).toBe('read-only\n');
      const x = await nspawn(['-x', '-M', name, ...sh('touch /x 2>/dev/null && echo writable || echo read-only')]);
      expect(x.out).toBe('writable\n');
    } finally {
      rmSync(path, { force: true });
    }
    const loops = readdirSync('/sys/block').filter((d) => {
      try {
        return readFileSync(`/sys/block/${d}/loop/backing_file`, 'utf8').includes(name);
      } catch {
        return false;
      }
    });
    expect(loops).toEqual([]);
  });
});

describe('nspawn@NAME (systemd-nspawn@.service\'s command line) for a raw machine', () => {
  it('boots /var/lib/machines/NAME.raw with --machine=NAME alone, in a user namespace with its veth', async () => {
    const name = `im-cb-unit-${process.pid}`;
    const path = `/var/lib/machines/${name}.raw`;
    const bootTree = fx.tree('unit-tree');
    writeFileSync(
      `${bootTree}/etc/inittab`,
      '::sysinit:/bin/sh -c "echo unit-boot as $(id -u) on $(grep -c idmapped /proc/self/mountinfo) idmapped; test -e /sys/class/net/host0 && echo with host0"\n::once:/sbin/poweroff\n::shutdown:/bin/sync\n',
    );
    copyFileSync(fx.simple('unit.raw', bootTree), path);
    try {
      // ExecStart= of systemd 252's systemd-nspawn@.service (nspawnctl install-units writes the same for nspawn)
      const flags = ['--keep-unit', '--boot', '--link-journal=try-guest', '--network-veth', '-U', '--settings=override', `--machine=${name}`];
      const r = await nspawn(flags);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toContain('unit-boot as 0 on 1 idmapped\nwith host0\n');
    } finally {
      rmSync(path, { force: true });
    }
    expect(execFileSync('ip', ['-br', 'link']).toString()).not.toContain(`ve-${name.slice(0, 8)}`);
  });
});

describe('every way out of -U -i leaves no loop device, mount, held range lock or snapshot', () => {
  for (const [how, handoff, extra, ephemeral] of [
    ['SIGTERM', '1', [], ''],
    ['SIGKILL', '1', [], ''],
    ['SIGTERM', '0', [], ''],
    ['SIGKILL', '0', [], ''],
    ['SIGKILL', '1', ['-x'], ''],
    ['SIGKILL', '0', ['-x'], ''],
    ['SIGKILL', '1', ['--volatile=overlay'], ''],
    ['SIGKILL', '1', ['-x'], 'copy'],
    ['SIGKILL', '0', ['-x'], 'copy'],
  ] as const) {
    const copy = ephemeral === 'copy';
    it(`${how} of nspawn ${extra.join(' ')}${copy ? ' (NSPAWN_EPHEMERAL=copy)' : ''} (${handoff === '1' ? 'handed over' : 'supervised'})`, async () => {
      const image = fx.simple(`im-cb-way-out-${how}-${handoff}${extra.join('')}${ephemeral}.raw`);
      const before = fx.sha256(image);
      let base = -1;
      let heldWhileRunning = false;
      const r = await nspawn(
        [...extra, '-U', '-i', image, ...sh('cat /proc/self/uid_map; echo READY; exec sleep 60')],
        (pid, out) => {
          base = baseOf(out);
          heldWhileRunning = rangeLockHeld(base);
          process.kill(pid, how);
        },
        { ...process.env, NSPAWN_HANDOFF: handoff, ...(copy ? { NSPAWN_EPHEMERAL: 'copy' } : {}) },
      );
      expect(heldWhileRunning).toBe(true);
      if (how === 'SIGKILL') expect(r.signal).toBe('SIGKILL');
      expect(await fx.noLoopsLeft()).toEqual([]);
      expect(fx.mounts()).toEqual([]);
      for (let i = 0; i < 100 && rangeLockHeld(base); i++) await new Promise((res) => setTimeout(res, 20));
      expect(rangeLockHeld(base)).toBe(false);
      // SIGTERM: the holder removed the lock file (release_lock_file()); kill -9 leaves a free one, garbage in
      // systemd's protocol, which the next start collects
      if (how === 'SIGTERM') expect(existsSync(`/run/systemd/nspawn-uid/${base}`)).toBe(false);
      expect(readdirSync(fx.dir).filter((f) => f.startsWith('.#machine.'))).toEqual([]);
      if (extra.length) expect(fx.sha256(image)).toBe(before);
      // the image lock went with it: the image starts again
      const again = await nspawn(['-U', '-i', image, '/bin/true']);
      expect({ code: again.code, err: again.err }).toEqual({ code: 0, err: '' });
      expect(existsSync(`/run/systemd/nspawn-uid/${base}`)).toBe(false);
    });
  }
});
