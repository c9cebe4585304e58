/** Root test helpers: busybox trees, ownership listings, systemd-nspawn as the oracle. */
import { execaSync } from 'execa';
import { mkdtempSync } from 'node:fs';
import { basename, join } from 'node:path';
import { busyboxTree, referenceCommand, REPO, removeTestDir, requireRoot as kitRequireRoot } from '@nspawn/test-kit';

export { REPO };
export const NSPAWN = join(REPO, 'apps/cli/dist/nspawn.cjs');

export function requireRoot(): void {
  kitRequireRoot('they make user namespaces and shift trees');
}

export function tempDir(prefix = 'ut-'): string {
  return mkdtempSync(join('/var/tmp', prefix));
}

/** a busybox tree at DIR/NAME */
export function makeTree(parent: string, name = basename(parent)): string {
  return busyboxTree(join(parent, name));
}

export { mountsUnder, referenceCommand } from '@nspawn/test-kit';

/** removes a temp dir made by a test, refusing when something is still mounted below it */
export const removeTemp = removeTestDir;

/** every inode: path, owner and group relative to BASE, mode; sorted (for comparing trees shifted to other bases) */
export function ownership(root: string, base = 0): string {
  const out = execaSync('find', [root, '-printf', '%P %U %G %m %y\n'], { maxBuffer: 1 << 28, stripFinalNewline: false }).stdout;
  return out
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const [p, u, g, m, y] = l.split(' ');
      return `${p} ${Number(u) - base} ${Number(g) - base} ${m} ${y}`;
    })
    .sort()
    .join('\n');
}

/** getfacl -R -n of the tree, with IDs relative to BASE */
export function acls(root: string, base = 0): string {
  const out = execaSync('getfacl', ['-R', '-n', '-p', '-P', root], { maxBuffer: 1 << 28, stripFinalNewline: false }).stdout;
  return out
    .split('\n')
    .filter((l) => !l.startsWith('# file:') && !l.startsWith('# owner') && !l.startsWith('# group'))
    .map((l) => l.replace(/^(default:)?(user|group):([0-9]+):/, (_, d, k, id) => `${d ?? ''}${k}:${Number(id) - base}:`))
    .join('\n');
}

export interface Ran {
  status: number;
  out: string;
  err: string;
}

export function systemdNspawn(args: string[]): Ran {
  const r = execaSync(...referenceCommand(['-q', '--register=no', '--keep-unit', ...args]), { stdio: ['ignore', 'pipe', 'pipe'], reject: false, stripFinalNewline: false });
  return { status: r.exitCode ?? 1, out: r.stdout, err: r.stderr };
}

export function nspawn(args: string[], env?: NodeJS.ProcessEnv): Ran {
  const r = execaSync(process.execPath, [NSPAWN, '-q', '--register=no', '--keep-unit', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    reject: false,
    stripFinalNewline: false,
    ...(env ? { env, extendEnv: false } : {}),
  });
  return { status: r.exitCode ?? 1, out: r.stdout, err: r.stderr };
}

/** "0 BASE COUNT" of a uid_map line */
export function parseMap(text: string): [number, number, number] {
  const f = text.trim().split(/\s+/).map(Number);
  return [f[0]!, f[1]!, f[2]!];
}

/** the lines of two ownership() listings whose paths both have (a container run adds files the other never saw) */
export function common(a: string, b: string): [string, string] {
  const path = (l: string) => l.slice(0, l.indexOf(' '));
  const pa = new Set(a.split('\n').map(path));
  const pb = new Set(b.split('\n').map(path));
  const keep = (s: string, other: Set<string>) => s.split('\n').filter((l) => other.has(path(l))).join('\n');
  return [keep(a, pb), keep(b, pa)];
}
