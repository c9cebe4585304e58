/**
 * Storage side by side with systemd-nspawn 252, on a real btrfs and a real ext4 (loop devices made and destroyed
 * here): `-x` runs on a snapshot that is gone afterwards whatever the end (exit, failure, SIGTERM, kill -9 then
 * the next start), `--template` populates the same trees, image locks conflict both ways, `-D / -x` runs the host.
 * Root only; it fails, never skips, without systemd-nspawn.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSubvolume, globalLockPath, imageStatus, isSubvolume, removeImage, removeTree, renameImage } from '@nspawn/btrfs';
import { COMMON_FLAGS, NSPAWN_BIN, requireRootAndSystemdNspawn, runTool, type Tool, TOOL_ENV, toolCommand, TOOLS } from './helpers/containers.js';
import { makeBusyboxTree } from './helpers/busybox-tree.js';
// the btrfs package's own file system fixture (loop-device btrfs and ext4, made and destroyed by the tests)
import { type Fs, makeFs } from '../../../packages/btrfs/test/fixture.js';

const fss: Record<string, Fs> = {};
beforeAll(() => {
  requireRootAndSystemdNspawn();
  fss.ext4 = makeFs('ext4', 256);
  fss.btrfs = makeFs('btrfs', 400);
});
afterAll(() => {
  for (const f of Object.values(fss)) f.dispose();
});

/** path, type, mode, owner, size, link count and link target of everything in DIR, sorted */
function manifest(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const n of readdirSync(join(dir, rel)).sort()) {
      const r = rel === '' ? n : `${rel}/${n}`;
      const st = lstatSync(join(dir, r));
      const kind = st.isDirectory() ? 'd' : st.isSymbolicLink() ? `l>${readlinkSync(join(dir, r))}` : st.isFile() ? `f${st.size}` : 'o';
      out.push(`${r} ${kind} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}${st.isDirectory() ? '' : ` n${st.nlink}`}`);
      if (st.isDirectory()) walk(r);
    }
  };
  walk('');
  return out;
}

const ls = (d: string) => readdirSync(d).sort();
const mountsAt = (d: string) => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.split(' ')[4]?.startsWith(d));

function busybox(dir: string, subvolume: boolean): string {
  if (subvolume) createSubvolume(dir);
  return makeBusyboxTree(dir);
}

/** starts TOOL in the background; resolves with the child once PATH exists */
async function startUntil(tool: Tool, args: string[], path: string): Promise<ChildProcess> {
  const [cmd, pre] = toolCommand(tool);
  const child = spawn(cmd, [...pre, ...COMMON_FLAGS, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: TOOL_ENV });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  for (let i = 0; i < 200; i++) {
    if (existsSync(path)) return child;
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  child.kill('SIGKILL');
  throw new Error(`${tool} did not create ${path}: ${err}`);
}
const ended = (c: ChildProcess) => new Promise<number | null>((r) => (c.exitCode !== null ? r(c.exitCode) : c.on('exit', (code) => r(code))));

describe.each(['ext4', 'btrfs'] as const)('-x on %s', (kind) => {
  const parent = () => join(fss[kind]!.dir, 'x');
  const tree = () => join(parent(), 'bt-xtree');
  beforeAll(() => {
    mkdirSync(parent());
    busybox(tree(), kind === 'btrfs');
  });

  it('runs on a snapshot, writes stay in it, nothing is left; same as systemd-nspawn', async () => {
    const before = ls(parent());
    const treeBefore = manifest(tree());
    const script = 'echo data > /bt-written && cat /bt-written && ls / && stat -c %i / && echo ok';
    const out: Record<string, string> = {};
    for (const tool of TOOLS) {
      const r = await runTool(tool, ['-q', '-D', tree(), '-x', '/bin/sh', '-c', script]);
      expect(r.status, `${tool}: ${r.stderr}`).toBe(0);
      out[tool] = r.stdout.replace(/\r/g, '');
      expect(ls(parent()), `${tool} left something`).toEqual(before);
      expect(manifest(tree())).toEqual(treeBefore);
      expect(mountsAt(parent())).toEqual([]);
    }
    // the root inode: 256 for a btrfs snapshot under both; ext4's copy and our overlay differ on purpose
    if (kind === 'btrfs') expect(out.nspawn).toBe(out['systemd-nspawn']);
    else {
      const noIno = (o: string) => o.split('\n').filter((l) => !/^\d+$/.test(l));
      expect(noIno(out.nspawn!)).toEqual(noIno(out['systemd-nspawn']!));
    }
  });

  it('says where it runs: systemd\'s snapshot name beside the tree (and 252\'s random machine name for -x without -M)', async () => {
    const r = await runTool('nspawn', ['-D', tree(), '-x', '/bin/true']);
    expect(r.status).toBe(0);
    const m = /Spawning container bt-xtree-[0-9a-f]{16} on (\S+)\./.exec(r.stderr);
    expect(m?.[1]).toMatch(new RegExp(`^${parent()}/\\.#machine\\.bt-xtree[0-9a-f]{16}${kind === 'btrfs' ? '' : '/root'}$`));
  });

  it('removes the snapshot after a failing payload, a missing command and SIGTERM', async () => {
    const before = ls(parent());
    const r = await runTool('nspawn', ['-q', '-D', tree(), '-x', '/bin/sh', '-c', 'exit 7']);
    expect(r.status).toBe(7);
    expect(ls(parent())).toEqual(before);
    const r2 = await runTool('nspawn', ['-q', '-D', tree(), '-x', '/no/such/command']);
    expect(r2.status).not.toBe(0);
    expect(ls(parent())).toEqual(before);
    const c = await startUntil('nspawn', ['-q', '-D', tree(), '-x', '/bin/sleep', '30'], '/dev/null');
    for (let i = 0; i < 100 && ls(parent()).length === before.length; i++) await new Promise((res) => setTimeout(res, 20));
    await new Promise((res) => setTimeout(res, 200));
    c.kill('SIGTERM');
    await ended(c);
    expect(ls(parent())).toEqual(before);
    expect(mountsAt(parent())).toEqual([]);
  });

  it('nspawn hands -x over to its helper, which removes the snapshot (btrfs) or the overlay (elsewhere) and its lock at the end', async () => {
    const before = ls(parent());
    const c = await startUntil('nspawn', ['-q', '-M', `bt-ho-${kind}`, '-D', tree(), '-x', '/bin/sleep', '1'], '/dev/null');
    let exe = '';
    for (let i = 0; i < 100; i++) {
      exe = readlinkSync(`/proc/${c.pid}/exe`);
      if (basename(exe).startsWith('nspawn-helper') || ls(parent()).length > before.length) break;
      await new Promise((res) => setTimeout(res, 20));
    }
    await new Promise((res) => setTimeout(res, 200));
    exe = readlinkSync(`/proc/${c.pid}/exe`);
    // (the helper built here, or the prebuilt one for this architecture: nspawn-helper-linux-x64)
    expect(basename(exe)).toMatch(/^nspawn-helper/);
    // the snapshot's lock is held by that process while it runs
    const held = ls(parent()).filter((n) => !before.includes(n) && n.endsWith('.lck'));
    expect(held.length).toBe(1);
    expect(await ended(c)).toBe(0);
    expect(ls(parent())).toEqual(before);
    expect(mountsAt(parent())).toEqual([]);
  });

  it('after kill -9 the orphan is found by its free lock and removed at the next start', async () => {
    const before = ls(parent());
    const name = `bt-k9-${kind}`;
    const c = await startUntil('nspawn', ['-q', '-M', name, '-D', tree(), '-x', '/bin/sleep', '30'], '/dev/null');
    for (let i = 0; i < 200 && ls(parent()).length === before.length; i++) await new Promise((res) => setTimeout(res, 20));
    await new Promise((res) => setTimeout(res, 300));
    c.kill('SIGKILL');
    await ended(c);
    const left = ls(parent()).filter((n) => !before.includes(n));
    expect(left.some((n) => n.startsWith('.#machine.bt-xtree'))).toBe(true);
    // the container dies with its helper (PDEATHSIG); at once, the next start of the name collects what the run left
    // (its run lock is free: no waiting for a clock)
    const r = await runTool('nspawn', ['-q', '-M', name, '-D', tree(), '-x', '/bin/true']);
    expect(r.status, r.stderr).toBe(0);
    expect(ls(parent())).toEqual(before);
    expect(mountsAt(parent())).toEqual([]);
  });

  it('a hostile container (symlinks to host files, to / and to the mount root) harms nothing when its snapshot goes', async () => {
    const before = ls(parent());
    const precious = join(fss[kind]!.dir, 'bt-precious');
    writeFileSync(precious, 'keep');
    const script = `ln -s ${precious} /link-file && ln -s / /link-root && mkdir -p /d/e && ln -s ${fss[kind]!.dir} /d/e/up && echo x > /d/e/f`;
    const r = await runTool('nspawn', ['-q', '-D', tree(), '-x', '/bin/sh', '-c', script]);
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(precious, 'utf8')).toBe('keep');
    expect(ls(parent())).toEqual(before);
    expect(existsSync(join(fss[kind]!.dir, 'x'))).toBe(true);
  });

  it('a start that fails while making the snapshot leaves nothing and says why', async () => {
    const before = ls(parent());
    const r = await runTool('nspawn', ['-q', '-D', tree(), '-x', '/bin/true'], { env: { ...TOOL_ENV, NSPAWN_EPHEMERAL: kind === 'btrfs' ? 'bogus' : 'snapshot' } });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(kind === 'btrfs' ? /Invalid \$NSPAWN_EPHEMERAL=bogus/ : /not a btrfs subvolume/);
    expect(ls(parent())).toEqual(before);
  });

  it('$NSPAWN_EPHEMERAL=copy copies as systemd does, and leaves nothing', async () => {
    const before = ls(parent());
    const r = await runTool('nspawn', ['-q', '-D', tree(), '-x', '/bin/sh', '-c', 'stat -f -c %t /'], { env: { ...TOOL_ENV, NSPAWN_EPHEMERAL: 'copy' } });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(kind === 'btrfs' ? '9123683e' : 'ef53');
    expect(ls(parent())).toEqual(before);
  });
});

describe('SIGTERM while -x copies (NSPAWN_EPHEMERAL=copy)', () => {
  it('stops, removes the partial copy and says so, as systemd-nspawn does', async () => {
    const parent = join(fss.ext4!.dir, 'slow');
    mkdirSync(parent);
    const tree = busybox(join(parent, 'bt-slow'), false);
    mkdirSync(join(tree, 'many'));
    for (let i = 0; i < 6000; i++) writeFileSync(join(tree, 'many', `f${i}`), `${i}\n`);
    const before = ls(parent);
    const child = spawn(process.execPath, [NSPAWN_BIN, ...COMMON_FLAGS, '-q', '-D', tree, '-x', '/bin/true'], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...TOOL_ENV, NSPAWN_EPHEMERAL: 'copy' },
    });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    for (let i = 0; i < 400 && !ls(parent).some((n) => n.startsWith('.#machine.')); i++) await new Promise((r) => setTimeout(r, 5));
    child.kill('SIGTERM');
    const code = await ended(child);
    expect(code, err).toBe(1);
    expect(err).toMatch(/Interrupted while copying file system tree to .*\.#machine\.bt-slow[0-9a-f]{16}, removed again\./);
    expect(ls(parent)).toEqual(before);
  });
});

describe('image locks against systemd-nspawn', () => {
  const tree = () => join(fss.ext4!.dir, 'bt-locked');
  beforeAll(() => busybox(tree(), false));

  for (const [holder, second] of [
    ['systemd-nspawn', 'nspawn'],
    ['nspawn', 'systemd-nspawn'],
  ] as const) {
    it(`a running ${holder} makes ${second} fail clearly, and the other way round`, async () => {
      const c = await startUntil(holder, ['-q', '-D', tree(), '/bin/sleep', '30'], join(fss.ext4!.dir, '.#bt-locked.lck'));
      try {
        await new Promise((r) => setTimeout(r, 200));
        const r = await runTool(second, ['-q', '-M', 'bt-second', '-D', tree(), '/bin/true']);
        expect(r.status).toBe(1);
        expect(r.stderr).toContain(`Directory tree ${tree()} is currently busy.`);
        // the image store sees it running and refuses to remove or rename it
        expect(imageStatus('bt-locked', { root: fss.ext4!.dir }).locked).toBe(true);
        expect(() => removeImage('bt-locked', { root: fss.ext4!.dir })).toThrow(/is in use/);
        expect(() => renameImage('bt-locked', 'bt-renamed', { root: fss.ext4!.dir })).toThrow(/is in use/);
        // -x does not lock the tree itself: it runs beside
        expect((await runTool(second, ['-q', '-M', 'bt-second', '-D', tree(), '-x', '/bin/true'])).status).toBe(0);
      } finally {
        // SIGTERM: a killed systemd-nspawn would leave its lock files behind (the locks themselves go)
        c.kill('SIGTERM');
        await ended(c);
      }
      expect(existsSync(globalLockPath(tree())!)).toBe(false);
      await new Promise((r) => setTimeout(r, 300));
      expect((await runTool(second, ['-q', '-D', tree(), '/bin/true'])).status).toBe(0);
    });
  }

  it('--read-only takes a shared lock: read-only runs coexist, a writable one is refused', async () => {
    const c = await startUntil('systemd-nspawn', ['-q', '--read-only', '-D', tree(), '/bin/sleep', '30'], join(fss.ext4!.dir, '.#bt-locked.lck'));
    try {
      await new Promise((r) => setTimeout(r, 200));
      const ro = await runTool('nspawn', ['-q', '-M', 'bt-ro2', '--read-only', '-D', tree(), '/bin/true']);
      expect(ro.status, ro.stderr).toBe(0);
      expect((await runTool('nspawn', ['-q', '-M', 'bt-ro3', '-D', tree(), '/bin/true'])).stderr).toContain('is currently busy');
    } finally {
      c.kill('SIGTERM');
      await ended(c);
    }
    expect(existsSync(globalLockPath(tree())!)).toBe(false);
  });
});

describe.each(['ext4', 'btrfs'] as const)('--template on %s', (kind) => {
  const dir = () => fss[kind]!.dir;
  beforeAll(() => {
    busybox(join(dir(), 'bt-tpl-plain'), false);
    if (kind === 'btrfs') busybox(join(dir(), 'bt-tpl-sub'), true);
  });

  for (const tpl of kind === 'btrfs' ? ['bt-tpl-plain', 'bt-tpl-sub'] : ['bt-tpl-plain']) {
    it(`populates a missing directory from ${tpl} like systemd-nspawn; an existing one is left alone`, async () => {
      const made: Record<string, string> = {};
      for (const tool of TOOLS) {
        const d = join(dir(), `bt-from-${tpl}-${tool}`);
        made[tool] = d;
        const r = await runTool(tool, ['-D', d, `--template=${join(dir(), tpl)}`, '/bin/sh', '-c', 'echo hi > /new-file']);
        expect(r.status, r.stderr).toBe(0);
        expect(r.stderr).toContain(`Populated ${d} from template ${join(dir(), tpl)}.`);
        const again = await runTool(tool, ['-D', d, `--template=${join(dir(), tpl)}`, '/bin/true']);
        expect(again.stderr).toContain(`Directory ${d} already exists, not populating from template ${join(dir(), tpl)}.`);
        expect(readFileSync(join(d, 'new-file'), 'utf8')).toBe('hi\n');
      }
      expect(manifest(made.nspawn!)).toEqual(manifest(made['systemd-nspawn']!));
      expect(isSubvolume(made.nspawn!)).toBe(isSubvolume(made['systemd-nspawn']!));
      expect(isSubvolume(made.nspawn!)).toBe(kind === 'btrfs');
      for (const d of Object.values(made)) removeTree(d, { within: dir() });
    });
  }

  it('-M without -D means /var/lib/machines/NAME; --template with -x is refused by both', async () => {
    const name = `bt-tpl-m${process.pid}`;
    const target = `/var/lib/machines/${name}`;
    try {
      const r = await runTool('nspawn', ['-q', '-M', name, `--template=${join(dir(), 'bt-tpl-plain')}`, '/bin/true']);
      expect(r.status, r.stderr).toBe(0);
      expect(existsSync(join(target, 'bin/busybox'))).toBe(true);
    } finally {
      if (existsSync(target)) removeTree(target, { within: '/var/lib/machines' });
      rmSync(`/var/lib/machines/.#${name}.lck`, { force: true });
    }
    for (const tool of TOOLS) {
      const r = await runTool(tool, ['-q', '-D', join(dir(), 'bt-x'), `--template=${join(dir(), 'bt-tpl-plain')}`, '-x', '/bin/true']);
      expect(r.status, tool).not.toBe(0);
      expect(existsSync(join(dir(), 'bt-x'))).toBe(false);
    }
  });
});

describe('-D / -x', () => {
  it('runs the host\'s own root on an overlay: sees the host /usr, writes stay in the container, nothing is left', async () => {
    const before = ls('/');
    const marker = `bt-root-${process.pid}`;
    const r = await runTool('nspawn', ['-q', '-D', '/', '-x', '/bin/sh', '-c', `test -x /usr/bin/env && ls /usr/bin | wc -l && echo x > /${marker} && cat /${marker} && /bin/true`]);
    expect(r.status, r.stderr).toBe(0);
    const n = Number(r.stdout.split('\n')[0]!.trim());
    expect(n).toBe(readdirSync('/usr/bin').length);
    expect(r.stdout.replace(/\r/g, '')).toContain('\nx\n');
    expect(existsSync(`/${marker}`)).toBe(false);
    expect(ls('/')).toEqual(before);
    expect(mountsAt('/.#machine.')).toEqual([]);
  });
});
