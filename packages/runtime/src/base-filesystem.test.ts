import { lstatSync, mkdirSync, mkdtempSync, readlinkSync, rmSync, symlinkSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { baseFilesystemCreate, baseFilesystemTable } from './base-filesystem.js';

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'nspawn-test-basefs-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('base_filesystem_create()', () => {
  it('has systemd 252\'s table, in its order (lib64 only where the architecture has one)', () => {
    expect(baseFilesystemTable('x64').map((e) => e.name)).toEqual(['bin', 'lib', 'root', 'sbin', 'usr', 'var', 'etc', 'proc', 'sys', 'dev', 'lib64']);
    expect(baseFilesystemTable('arm64').at(-1)).toMatchObject({ name: 'lib64', targets: ['usr/lib64'], exists: 'ld-linux-aarch64.so.1' });
    expect(baseFilesystemTable('x64').at(-1)).toMatchObject({ name: 'lib64', targets: ['usr/lib64'] });
    expect(baseFilesystemTable('arm').map((e) => e.name)).not.toContain('lib64');
  });

  it('makes what a merged-/usr tree lacks: /root 0750, the symlinks whose target exists, directories 0755', () => {
    for (const d of ['usr/bin', 'usr/lib/x86_64-linux-gnu', 'usr/lib64', 'etc']) mkdirSync(join(root, d), { recursive: true });
    // 252.31+ links /lib64 to usr/lib64 only, never to the multiarch directory even when that holds the loader
    writeFileSync(join(root, 'usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2'), '');
    writeFileSync(join(root, 'usr/lib64/ld-linux-x86-64.so.2'), '');
    const made = baseFilesystemCreate(root, 0, 'x64');
    expect(made).toEqual(['bin', 'lib', 'root', 'var', 'proc', 'sys', 'dev', 'lib64']);
    expect(readlinkSync(join(root, 'bin'))).toBe('usr/bin');
    expect(readlinkSync(join(root, 'lib'))).toBe('usr/lib');
    expect(readlinkSync(join(root, 'lib64'))).toBe('usr/lib64');
    expect(lstatSync(join(root, 'root')).mode & 0o7777).toBe(0o750);
    expect(lstatSync(join(root, 'var')).mode & 0o7777).toBe(0o755);
    // no usr/sbin: no sbin symlink (systemd makes none either)
    expect(readdirSync(root)).not.toContain('sbin');
    // the second time there is nothing to do
    expect(baseFilesystemCreate(root, 0, 'x64')).toEqual([]);
  });

  it('leaves what exists alone, a dangling symlink included (never followed)', () => {
    mkdirSync(join(root, 'usr/lib'), { recursive: true });
    symlinkSync('/nonexistent/elsewhere', join(root, 'root'));
    mkdirSync(join(root, 'etc'), { mode: 0o700 });
    baseFilesystemCreate(root, 0, 'x64');
    expect(readlinkSync(join(root, 'root'))).toBe('/nonexistent/elsewhere');
    expect(lstatSync(join(root, 'etc')).mode & 0o777).toBe(0o700);
  });
});
