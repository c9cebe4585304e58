/**
 * Image locks: the files systemd uses (DIR/.#NAME.lck, /run/systemd/nspawn/locks/inode-DEV:INO), OFD semantics
 * (two opens conflict even in one process), shared and exclusive, removal of the files by the exclusive holder,
 * a lock held by another process (released when it dies, as after kill -9). Root only.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { globalLockPath, ImageBusyError, isImageLocked, localLockPath, lockImage } from '../src/index.js';

const base = mkdtempSync('/var/tmp/bt-lock-');
afterAll(() => rmSync(base, { recursive: true, force: true }));

describe('image locks', () => {
  it('uses systemd\'s files and removes them on release', () => {
    const img = join(base, 'img');
    mkdirSync(img);
    const st = statSync(img);
    expect(localLockPath(img)).toBe(join(base, '.#img.lck'));
    expect(globalLockPath(img)).toBe(`/run/systemd/nspawn/locks/inode-${st.dev}:${st.ino}`);
    const l = lockImage(img);
    expect(l.local?.path).toBe(join(base, '.#img.lck'));
    expect(existsSync(join(base, '.#img.lck'))).toBe(true);
    expect(existsSync(globalLockPath(img)!)).toBe(true);
    expect(() => lockImage(img)).toThrow(ImageBusyError);
    expect(() => lockImage(img)).toThrow(`Directory tree ${img} is currently busy.`);
    expect(() => lockImage(img, { shared: true })).toThrow(ImageBusyError);
    expect(isImageLocked(img)).toBe(true);
    l.release();
    l.release();
    expect(existsSync(join(base, '.#img.lck'))).toBe(false);
    expect(existsSync(globalLockPath(img)!)).toBe(false);
    expect(isImageLocked(img)).toBe(false);
  });

  it('shared locks coexist and exclude an exclusive one; the last one out removes the files', () => {
    const img = join(base, 'shared');
    mkdirSync(img);
    const a = lockImage(img, { shared: true });
    const b = lockImage(img, { shared: true });
    expect(() => lockImage(img)).toThrow(ImageBusyError);
    a.release();
    expect(existsSync(join(base, '.#shared.lck'))).toBe(true);
    b.release();
    expect(existsSync(join(base, '.#shared.lck'))).toBe(false);
  });

  it('a missing image gets only the local lock; / is never locked exclusively; $SYSTEMD_NSPAWN_LOCK=0 turns locks off', () => {
    const l = lockImage(join(base, 'not-yet'));
    expect(l.global).toBeUndefined();
    expect(l.local?.path).toBe(join(base, '.#not-yet.lck'));
    l.release();
    expect(() => lockImage('/')).toThrow(ImageBusyError);
    lockImage('/', { shared: true }).release();
    const img = join(base, 'img');
    const off = lockImage(img, { env: { SYSTEMD_NSPAWN_LOCK: '0' } });
    expect(off.local).toBeUndefined();
    expect(existsSync(join(base, '.#img.lck'))).toBe(false);
  });

  it('a lock held by another process conflicts, and is free once that process is killed', async () => {
    const img = join(base, 'img');
    const src = fileURLToPath(new URL('../dist/index.js', import.meta.url));
    const child = spawn(process.execPath, ['--input-type=module', '-e', `import { lockImage } from ${JSON.stringify(src)}; lockImage(${JSON.stringify(img)}); console.log('locked'); setInterval(() => {}, 1000);`], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      await new Promise<void>((res, rej) => {
        child.stdout!.on('data', (d: Buffer) => d.toString().includes('locked') && res());
        child.on('exit', () => rej(new Error('child died')));
      });
      expect(isImageLocked(img)).toBe(true);
    } finally {
      child.kill('SIGKILL');
      await new Promise((r) => child.on('close', r));
    }
    // kill -9: the files stay, the locks are gone
    expect(existsSync(join(base, '.#img.lck'))).toBe(true);
    expect(isImageLocked(img)).toBe(false);
    expect(existsSync(join(base, '.#img.lck'))).toBe(true); // asking changes nothing
    lockImage(img).release(); // the next holder removes the stale files
    expect(existsSync(join(base, '.#img.lck'))).toBe(false);
  });
});
