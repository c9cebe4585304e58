/**
 * --volatile=yes|state|overlay (systemd-nspawn 252's setup_volatile_mode(), src/nspawn/nspawn-mount.c), the planning
 * side: what the container's root holds once the helper has put the volatile mounts in place (native/volatile.c),
 * and what base_filesystem_create() then makes there. The tree itself is never written: 252 runs
 * base_filesystem_create() after setup_volatile_mode(), on the tmpfs (yes), the read-only tree (state: every
 * creation fails with EROFS, ignored) or the overlay (overlay).
 */
import type { Tree } from './host.js';
import { baseFilesystemTable } from './base-filesystem.js';
import { type Op, OpFlag } from './protocol.js';

export type VolatileMode = 'yes' | 'state' | 'overlay';

const under = (path: string, dir: string) => path === dir || path.startsWith(`${dir}/`);
const clean = (path: string) => `/${path.split('/').filter((p) => p !== '' && p !== '.').join('/')}`;

/**
 * The container's root as the plan should see it: with yes only the tree's /usr (in an empty tmpfs), with state the
 * tree with an empty /var, with overlay the tree.
 */
export function volatileTree(tree: Tree, mode: VolatileMode | undefined): Tree {
  if (mode === undefined || mode === 'overlay') return tree;
  const hidden = mode === 'yes' ? (p: string) => !under(clean(p), '/usr') && clean(p) !== '/' : (p: string) => under(clean(p), '/var') && clean(p) !== '/var';
  const emptyDir = mode === 'yes' ? '/' : '/var';
  return {
    root: tree.root,
    resolve: (p) => (hidden(p) ? undefined : tree.resolve(p)),
    readFile: (p) => (hidden(p) ? undefined : tree.readFile(p)),
    isDirectory: (p) => (clean(p) === emptyDir ? true : hidden(p) ? false : tree.isDirectory(p)),
    readdir: (p) => (clean(p) === '/' && mode === 'yes' ? (tree.isDirectory('/usr') ? ['usr'] : []) : clean(p) === emptyDir || hidden(p) ? [] : tree.readdir(p)),
    lexists: (p) => (clean(p) === emptyDir ? true : hidden(p) ? false : tree.lexists(p)),
    readlink: (p) => (hidden(p) ? undefined : tree.readlink(p)),
  };
}

/**
 * base_filesystem_create() in the container's mount namespace, for a volatile root (ROOT: its view,
 * volatileTree()): the entries it lacks, as plan operations that may fail (252 ignores EEXIST and EROFS). Nothing
 * for state, whose root is read-only by then.
 */
export function volatileBaseFilesystemOps(root: Tree, mode: VolatileMode, arch: string = process.arch): Op[] {
  if (mode === 'state') return [];
  const ops: Op[] = [];
  for (const e of baseFilesystemTable(arch)) {
    if (root.lexists(`/${e.name}`)) continue;
    if (e.targets) {
      const target = e.targets.find((t) => root.lexists(`/${t}`) && (e.exists === undefined || root.lexists(`/${t}/${e.exists}`)));
      if (target !== undefined) ops.push({ kind: 'symlink', source: target, target: `/${e.name}`, flags: OpFlag.OPTIONAL });
    } else ops.push({ kind: 'mkdir', target: `/${e.name}`, mode: e.mode, flags: OpFlag.OPTIONAL });
  }
  return ops;
}
