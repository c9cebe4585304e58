/**
 * Image names "." and ".." (issue 15, section 4), and every other name that is no image name or that leads out of
 * the store, through every image verb of nspawnctl and the io.systemd.MachineImage API of nspawnd: refused with one
 * line, and nothing outside the store (nor in it) changes. As root, with a private nspawnd.
 */
import { execaSync } from 'execa';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isImmutable, setImmutable } from '@nspawn/btrfs';
import { varlinkCall } from '@nspawn/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusybox, requireRoot, TestDaemon } from './helpers.js';

let d: TestDaemon;
let outside: string;
let tarball: string;

beforeAll(async () => {
  requireRoot();
  d = new TestDaemon();
  makeBusybox(join(d.machines, 'dm-img'));
  outside = join(d.base, 'outside');
  mkdirSync(join(outside, 'etc'), { recursive: true });
  writeFileSync(join(outside, 'etc/secret'), 'host file\n');
  symlinkSync('..', join(d.machines, 'dm-up'));
  symlinkSync('.', join(d.machines, 'dm-self'));
  symlinkSync(outside, join(d.machines, 'dm-abs'));
  symlinkSync('dm-img', join(d.machines, 'dm-alias'));
  tarball = join(d.base, 'dm-small.tar');
  execaSync('tar', ['-C', join(d.machines, 'dm-img'), '-cf', tarball, './etc']);
  await d.start();
});

afterAll(async () => {
  // the old code set the immutable flag through ".."; never leave one behind
  for (const p of [d?.base, outside, d && join(d.base, 'machines')])
    if (p && existsSync(p) && isImmutable(p)) setImmutable(p, false);
  for (const l of ['dm-up', 'dm-self', 'dm-abs', 'dm-alias']) {
    const p = d && join(d.machines, l);
    if (p && lstatSync(p, { throwIfNoEntry: false })?.isSymbolicLink()) execaSync('rm', ['-f', p]);
  }
  await d?.cleanup();
});

/** what must not change: the base directory's entries (not the daemon's run/ and log/), the store, outside */
function snapshot(): string[] {
  const out = [`base ${readdirSync(d.base).sort().join(',')} ${isImmutable(d.base) ? 'i' : ''}`];
  const walk = (dir: string, depth: number) => {
    for (const e of readdirSync(dir).sort()) {
      const p = join(dir, e);
      const st = lstatSync(p);
      out.push(`${p} ${st.mode.toString(8)} ${st.isSymbolicLink() ? readlinkSync(p) : st.isFile() ? readFileSync(p, 'utf8') : ''} ${st.isDirectory() && isImmutable(p) ? 'i' : ''}`);
      if (st.isDirectory() && depth > 0) walk(p, depth - 1);
    }
  };
  walk(d.machines, 1);
  walk(outside, 2);
  return out;
}

const INVALID = ['.', '..', 'a/b', '', 'x'.repeat(256), '../dm-img', 'dm-img/..', '.#dm-tmp'];
const OUTSIDE = ['dm-up', 'dm-self', 'dm-abs'];
const shown = (n: string) => (n.length > 300 ? `${n.slice(0, 300)}...` : n);

describe('image names through nspawnctl', () => {
  it('every image verb refuses a name that is no image name, with one line, before anything is done', () => {
    const before = snapshot();
    const out = join(d.base, 'dm-out.tar');
    for (const name of INVALID) {
      const verbs = [
        ['image-status', name],
        ['clone', name, 'dm-new'],
        ['clone', 'dm-img', name],
        ['rename', name, 'dm-new'],
        ['rename', 'dm-img', name],
        ['read-only', name, 'yes'],
        ['read-only', name, 'no'],
        ['remove', name],
        ['set-limit', name, '1G'],
        ['export-tar', name, out],
        ['import-tar', tarball, name],
        ['pull-tar', 'http://127.0.0.1:1/dm-x.tar', name],
        ['show-image', name],
        ['export-raw', name, out],
        ['import-raw', tarball, name],
        ['import-fs', d.base, name],
        ['pull-raw', 'http://127.0.0.1:1/dm-x.raw', name],
      ];
      for (const v of verbs) {
        const r = d.ctl(v);
        expect(r.status, v.join(' ')).toBe(1);
        expect(r.stderr, v.join(' ')).toBe(`Image name '${shown(name)}' is invalid.\n`);
      }
    }
    expect(existsSync(out)).toBe(false);
    expect(snapshot()).toEqual(before);
  }, 300000);

  it('every image verb refuses a symlink that leads out of the store, naming where it leads', () => {
    const before = snapshot();
    const out = join(d.base, 'dm-out.tar');
    for (const name of OUTSIDE) {
      for (const v of [
        ['image-status', name],
        ['clone', name, 'dm-new'],
        ['rename', name, 'dm-new'],
        ['read-only', name, 'yes'],
        ['read-only', name, 'no'],
        ['remove', name],
        ['set-limit', name, '1G'],
        ['export-tar', name, out],
        ['show-image', name],
        ['export-raw', name, out],
      ]) {
        const r = d.ctl(v);
        expect(r.status, v.join(' ')).toBe(1);
        expect(r.stderr, v.join(' ')).toMatch(new RegExp(`^Image "${name}" is a symlink to .*, outside the image store ${d.machines}: refusing to use it\\n$`));
      }
      const r = d.ctl(['clone', 'dm-img', name]);
      expect(r.stderr).toMatch(/already exists/);
    }
    expect(existsSync(out)).toBe(false);
    expect(snapshot()).toEqual(before);
  }, 300000);

  it('machine verbs take machine names only ("..", "a/b", "_" are none), and start never boots a symlink out of the store', () => {
    const before = snapshot();
    for (const name of ['..', '.', 'a/b', 'dm_x']) {
      const r = d.ctl(['start', name]);
      expect(r.status, name).toBe(1);
      expect(r.stderr).toBe(`Invalid machine name ${name}.\n`);
    }
    for (const name of OUTSIDE) {
      const r = d.ctl(['start', name]);
      expect(r.status, name).toBe(1);
      expect(r.stderr).toMatch(/outside the image store/);
    }
    expect(d.list()).toEqual([]);
    expect(snapshot()).toEqual(before);
  });

  it('lists only the images inside the store; a symlink to an image in the store is one', () => {
    const names = d
      .ctl(['list-images', '--no-legend', '-a'])
      .stdout.split('\n')
      .filter(Boolean)
      .map((l) => l.split(/\s+/)[0]);
    expect(names).toEqual(['dm-alias', 'dm-img']);
    expect(JSON.parse(d.ctl(['image-status', 'dm-alias', '-o', 'json']).stdout)).toMatchObject({ name: 'dm-alias', type: 'directory' });
  });
});

describe('image names through io.systemd.MachineImage', () => {
  const sock = () => join(d.base, 'run', 'io.systemd.MachineImage');
  const call = (m: string, p: Record<string, unknown>) => varlinkCall(sock(), `io.systemd.MachineImage.${m}`, p, { timeoutMs: 20000 });
  const invalid = (parameter: string) => ({ error: 'org.varlink.service.InvalidParameter', parameters: { parameter } });

  it('InvalidParameter "name" or "newName" for every invalid name, in every method', async () => {
    const before = snapshot();
    for (const name of INVALID) {
      await expect(call('List', { name }), name).rejects.toMatchObject(invalid('name'));
      await expect(call('Update', { name, readOnly: true })).rejects.toMatchObject(invalid('name'));
      await expect(call('Update', { name, limit: 1 })).rejects.toMatchObject(invalid('name'));
      await expect(call('Update', { name: 'dm-img', newName: name })).rejects.toMatchObject(invalid('newName'));
      await expect(call('Clone', { name, newName: 'dm-new' })).rejects.toMatchObject(invalid('name'));
      await expect(call('Clone', { name: 'dm-img', newName: name })).rejects.toMatchObject(invalid('newName'));
      await expect(call('Remove', { name })).rejects.toMatchObject(invalid('name'));
      const transfer = (m: string, p: Record<string, unknown>) => varlinkCall(sock(), `io.nspawn.Transfer.${m}`, p, { timeoutMs: 20000 });
      await expect(transfer('PullRaw', { url: 'http://127.0.0.1:1/dm-x.raw', name })).rejects.toMatchObject(invalid('name'));
      await expect(transfer('ImportRaw', { file: '/dev/null', name })).rejects.toMatchObject(invalid('name'));
      await expect(transfer('ImportFs', { directory: d.base, name })).rejects.toMatchObject(invalid('name'));
      await expect(transfer('ExportRaw', { name, file: join(d.base, 'dm-out.raw') })).rejects.toMatchObject(invalid('name'));
    }
    for (const [m, p, field] of [
      ['List', { name: 5 }, 'name'],
      ['Update', { name: 'dm-img', readOnly: 'yes' }, 'readOnly'],
      ['Update', { name: 'dm-img', limit: '1G' }, 'limit'],
      ['Clone', { name: 'dm-img' }, 'newName'],
      ['Remove', {}, 'name'],
      ['SetPoolLimit', { limit: 'x' }, 'limit'],
      ['CleanPool', { mode: 'everything' }, 'mode'],
    ] as const)
      await expect(call(m, p), `${m} ${JSON.stringify(p)}`).rejects.toMatchObject(invalid(field));
    expect(snapshot()).toEqual(before);
  });

  it('a symlink out of the store is refused by every method, and Start does not boot it', async () => {
    const before = snapshot();
    for (const name of OUTSIDE) {
      for (const [m, p] of [
        ['List', { name }],
        ['Update', { name, readOnly: true }],
        ['Update', { name, newName: 'dm-new' }],
        ['Clone', { name, newName: 'dm-new' }],
        ['Remove', { name }],
      ] as const)
        await expect(call(m, p), `${m} ${name}`).rejects.toMatchObject({ error: 'io.nspawn.MachineImage.Failed', message: expect.stringContaining('outside the image store') });
      await expect(varlinkCall(d.socket, 'io.nspawn.Machine.Start', { name }, { timeoutMs: 20000 })).rejects.toMatchObject({
        error: 'io.nspawn.Machine.StartFailed',
        message: expect.stringContaining('outside the image store'),
      });
    }
    expect(snapshot()).toEqual(before);
  });
});
