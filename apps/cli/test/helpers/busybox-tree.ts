/**
 * Minimal busybox OS trees for root integration tests, built the way /tmp/bb is: bin/busybox plus a symlink per
 * applet, usr/lib/os-release (ID=busybox) with etc/os-release pointing at it, root in etc/passwd and etc/group,
 * and the probe script at /probe.sh. Enough for systemd-nspawn and nspawn to accept the directory as an OS tree.
 */
import { execaSync } from 'execa';
import { appendFileSync, chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll } from 'vitest';

/** The probe script every comparison runs (POSIX sh for busybox). */
export const PROBE_SCRIPT = fileURLToPath(new URL('../fixtures/probe.sh', import.meta.url));
/** Where makeBusyboxTree puts the probe inside the tree. */
export const PROBE_IN_TREE = '/probe.sh';

export interface BusyboxTreeOptions {
  /** the busybox binary to copy (default /bin/busybox; it must be static) */
  busybox?: string;
  /** copy the probe to /probe.sh (default true) */
  probe?: boolean;
}

/** Builds a busybox tree in DIR (created if missing, must be empty). Returns DIR. */
export function makeBusyboxTree(dir: string, opts: BusyboxTreeOptions = {}): string {
  const busybox = opts.busybox ?? '/bin/busybox';
  if (!existsSync(busybox)) throw new Error(`makeBusyboxTree: ${busybox} is missing (Debian: apt-get install busybox-static)`);
  mkdirSync(dir, { recursive: true });
  if (readdirSync(dir).length > 0) throw new Error(`makeBusyboxTree: ${dir} is not empty`);
  for (const d of ['bin', 'dev', 'etc', 'proc', 'run', 'sbin', 'sys', 'tmp', 'usr/lib', 'var']) mkdirSync(join(dir, d), { recursive: true, mode: 0o755 });
  mkdirSync(join(dir, 'root'), { mode: 0o750 });
  chmodSync(join(dir, 'root'), 0o750);
  symlinkSync('usr/lib', join(dir, 'lib'));

  copyFileSync(busybox, join(dir, 'bin/busybox'));
  chmodSync(join(dir, 'bin/busybox'), 0o755);
  const applets = execaSync(busybox, ['--list']).stdout
    .split('\n')
    .map((a) => a.trim())
    .filter((a) => a !== '' && a !== 'busybox' && !a.includes('/'));
  for (const a of applets) symlinkSync('busybox', join(dir, 'bin', a));

  writeFileSync(join(dir, 'usr/lib/os-release'), 'ID=busybox\nNAME=BusyBox\nPRETTY_NAME="BusyBox"\n', { mode: 0o644 });
  symlinkSync('../usr/lib/os-release', join(dir, 'etc/os-release'));
  writeFileSync(join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n', { mode: 0o644 });
  writeFileSync(join(dir, 'etc/group'), 'root:x:0:\n', { mode: 0o644 });

  if (opts.probe !== false) {
    copyFileSync(PROBE_SCRIPT, join(dir, PROBE_IN_TREE));
    chmodSync(join(dir, PROBE_IN_TREE), 0o755);
  }
  return dir;
}

/**
 * A busybox tree for the test file that calls this (at its top): DIR, a temp dir /tmp/PREFIXxxxxxx, with the tree
 * at DIR/box, made before the file's tests and removed after them (the paths are there once its beforeAll ran).
 * rawImage() makes DIR/box.raw: a GPT disk image whose root partition (this architecture's type) is an ext4 copy of
 * the tree.
 */
export function busyboxTreeForFile(prefix: string): { readonly dir: string; readonly tree: string; rawImage(): string } {
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(join('/tmp', prefix));
    makeBusyboxTree(join(dir, 'box'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return {
    get dir() {
      return dir;
    },
    get tree() {
      return join(dir, 'box');
    },
    rawImage() {
      const image = join(dir, 'box.raw');
      writeFileSync(image, '');
      truncateSync(image, 34 << 20);
      const rootType = process.arch === 'arm64' ? 'B921B045-1DF0-41C3-AF44-4C6F280D3FAE' : '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709';
      execaSync('sfdisk', ['-q', image], { input: `label: gpt\nstart=2048, size=65536, type=${rootType}\n` });
      execaSync('mkfs.ext4', ['-q', '-F', '-b', '4096', '-E', 'offset=1048576', '-d', join(dir, 'box'), image, '32M']);
      return image;
    },
  };
}

/**
 * A getent(1) for busybox trees (busybox has none): "passwd" and "group" by name or ID, and "initgroups" (the groups
 * listing the user as a member). systemd-nspawn 252 resolves --user= by running /usr/bin/getent in the container.
 */
export const GETENT_SCRIPT = `#!/bin/sh
PATH=/usr/sbin:/usr/bin:/sbin:/bin
db=$1 key=$2
case $db in
passwd|group) awk -F: -v k="$key" '$1 == k || $3 == k { print; found = 1; exit } END { exit !found }' /etc/$db ;;
initgroups)
  grep -q "^$key:" /etc/passwd || exit 2
  printf '%s' "$key"
  awk -F: -v u="$key" '{ n = split($4, m, ","); for (i = 1; i <= n; i++) if (m[i] == u) printf " %s", $3 }' /etc/group
  echo ;;
*) exit 1 ;;
esac
`;

/** Installs GETENT_SCRIPT as /usr/bin/getent in the tree (no-op when one exists). */
export function installGetent(dir: string): void {
  const path = join(dir, 'usr/bin/getent');
  if (existsSync(path)) return;
  mkdirSync(join(dir, 'usr/bin'), { recursive: true, mode: 0o755 });
  writeFileSync(path, GETENT_SCRIPT, { mode: 0o755 });
  chmodSync(path, 0o755);
}

/**
 * Adds a user and its primary group to a tree's /etc/passwd and /etc/group, with optional supplementary groups
 * (created when missing), and installs getent so that systemd-nspawn can resolve the user too.
 */
export function addTreeUser(
  dir: string,
  user: { name: string; uid: number; gid: number; home: string; shell?: string; groups?: Array<{ name: string; gid: number }> },
): void {
  appendFileSync(join(dir, 'etc/passwd'), `${user.name}:x:${user.uid}:${user.gid}:${user.name}:${user.home}:${user.shell ?? '/bin/sh'}\n`);
  appendFileSync(join(dir, 'etc/group'), `${user.name}:x:${user.gid}:\n`);
  for (const g of user.groups ?? []) appendFileSync(join(dir, 'etc/group'), `${g.name}:x:${g.gid}:${user.name}\n`);
  installGetent(dir);
}
