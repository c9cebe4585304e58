/**
 * The tree of a disk image as Node reads it while the container's own mounts exist only in its namespace: the image's
 * root (and /usr) partitions mounted read-only where this process can reach them (@nspawn/assembly passes detached
 * mounts, /proc/PID/fd/N), composed into one Tree: paths under /usr go to the /usr partition when the image has one.
 */
import { nodeTree, type Tree } from './host.js';

/** Host paths of an image's partitions, read-only, for reading (ContainerConfig.image.view). */
export interface ImageView {
  /** the root partition; none: the image only has /usr (its root is an empty tmpfs) */
  root?: string;
  /** the /usr partition, when it is one of its own */
  usr?: string;
}

/** PATH cleaned: '/'-separated components without '' and '.' */
function components(path: string): string[] {
  return path.split('/').filter((c) => c !== '' && c !== '.');
}

const emptyTree = (root: string): Tree => ({
  root,
  resolve: (p) => (components(p).length === 0 ? root : undefined),
  readFile: () => undefined,
  isDirectory: (p) => components(p).length === 0,
  readdir: () => [],
  lexists: (p) => components(p).length === 0,
  readlink: () => undefined,
});

/**
 * The Tree of VIEW. Symlinks are resolved inside the partition a path starts in (a root symlink into /usr, as
 * `/lib -> usr/lib`, is followed by its target's partition when the target is relative to /usr or absolute).
 */
export function imageTree(view: ImageView): Tree {
  const root = view.root !== undefined ? nodeTree(view.root) : emptyTree('/');
  if (view.usr === undefined) return root;
  const usr = nodeTree(view.usr);
  // the root's own symlink for PATH's first component (/lib -> usr/lib), made a path below /usr, if it is one
  const viaRootLink = (cs: string[]): string[] | undefined => {
    if (cs.length === 0) return undefined;
    const link = root.readlink(`/${cs[0]}`);
    if (link === undefined) return undefined;
    const t = components(link);
    return t[0] === 'usr' ? [...t, ...cs.slice(1)] : undefined;
  };
  const route = (path: string): { tree: Tree; path: string } => {
    let cs = components(path);
    cs = viaRootLink(cs) ?? cs;
    if (cs[0] === 'usr') return { tree: usr, path: `/${cs.slice(1).join('/')}` };
    return { tree: root, path: `/${cs.join('/')}` };
  };
  return {
    root: root.root,
    resolve: (p) => {
      const r = route(p);
      return r.tree.resolve(r.path);
    },
    readFile: (p) => {
      const r = route(p);
      return r.tree.readFile(r.path);
    },
    isDirectory: (p) => {
      const r = route(p);
      return r.tree.isDirectory(r.path);
    },
    readdir: (p) => {
      const r = route(p);
      return r.tree.readdir(r.path);
    },
    lexists: (p) => {
      const cs = components(p);
      if (cs.length === 1) return root.lexists(p) || cs[0] === 'usr';
      const r = route(p);
      return r.tree.lexists(r.path);
    },
    readlink: (p) => {
      const cs = components(p);
      if (cs.length === 1) return root.readlink(p);
      const r = route(p);
      return r.tree.readlink(r.path);
    },
  };
}
