/** Root test helpers: busybox trees, ownership listings, systemd-nspawn as the oracle. */
import { execaSync } from 'execa';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
export const NSPAWN = join(REPO, 'apps/cli/dist/nspawn.cjs');

export function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new Error('root integration tests must run as root');
}

export function tempDir(prefix = 'ut-'): string {
  return mkdtempSync(join('/var/tmp', prefix));
}

/** a busybox tree at DIR/NAME */
export function makeTree(parent: string, name = basename(parent)): string {
  const root = join(parent, name);
  execaSync(join(REPO, 'scripts/make-busybox-tree.sh'), [root], { stdio: ['ignore', 'ignore', 'inherit'] });
  return root;
}

export function mountsUnder(path: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((mp) => mp === path || mp.startsWith(`${path}/`));
}

/** removes a temp dir made by a test, refusing when something is still mounted below it */
export function removeTemp(dir: string): void {
  const left = mountsUnder(dir);
  if (left.length > 0) throw new Error(`mounts left under ${dir}: ${left.join(', ')}`);
  rmSync(dir, { recursive: true, force: true });
}

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
  const r = execaSync('systemd-nspawn', ['-q', '--register=no', '--keep-unit', ...args], { stdio: ['ignore', 'pipe', 'pipe'], reject: false, stripFinalNewline: false });
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
