/**
 * The tree of a disk image as Node reads it while the container's own mounts exist only in its namespace: the image's
 * root (and /usr) partitions mounted read-only where this process can reach them (@nspawn/assembly passes detached
 * mounts, /proc/PID/fd/N), composed into one Tree: paths under /usr go to the /usr partition when the image has one.
 */
import { lstatSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { nodeTree, type Tree } from './host.js';
import type { ImageMountStep } from './protocol.js';

/** A disk image as a run uses it (ContainerConfig.image). */
export interface ContainerImage {
  /** the image file or block device (messages) */
  path: string;
  /** its mounts, in order */
  steps: ImageMountStep[];
  /** host paths where this process reads the image's root and /usr partitions (read-only) for the plan's decisions */
  view: ImageView;
  /** -U with ownership map: the partitions' file systems as idmapped mounts into the container's range */
  idmap?: boolean;
}

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

/** Resolves PATH (components) in the image, following symlinks inside it (across its partitions); HOST maps
 * resolved components to the host path that holds them. */
function chase(host: (cs: string[]) => string, path: string, maxLinks = 40): string[] | undefined {
  const parts = components(path);
  const done: string[] = [];
  let links = 0;
  while (parts.length > 0) {
    const c = parts.shift()!;
    if (c === '..') {
      done.pop();
      continue;
    }
    done.push(c);
    let st;
    try {
      st = lstatSync(host(done), { throwIfNoEntry: false });
    } catch {
      return undefined;
    }
    if (st === undefined) return undefined;
    if (st.isSymbolicLink()) {
      const target = readlinkSync(host(done));
      done.pop();
      if (++links > maxLinks) return undefined;
      if (target.startsWith('/')) done.length = 0;
      parts.unshift(...components(target));
    }
  }
  return done;
}

/**
 * The Tree of VIEW: the root partition's tree with the /usr partition's at /usr, symlinks resolved across them
 * (`/etc/os-release -> ../usr/lib/os-release`) without ever leaving the image.
 */
export function imageTree(view: ImageView): Tree {
  if (view.usr === undefined && view.root !== undefined) return nodeTree(view.root);
  const usr = view.usr;
  const root = view.root;
  // the host path of resolved components: /usr/... in the /usr partition, the rest in the root one (an image without
  // a root partition has an empty tmpfs there: nothing but /usr exists)
  const host = (cs: string[]): string => {
    if (cs[0] === 'usr' && usr !== undefined) return cs.length === 1 ? usr : `${usr}/${cs.slice(1).join('/')}`;
    if (root === undefined) return cs.length === 0 ? '/' : '/nonexistent/nspawn-image-empty-root';
    return cs.length === 0 ? root : `${root}/${cs.join('/')}`;
  };
  const resolve = (p: string) => {
    const cs = chase(host, p);
    return cs === undefined ? undefined : host(cs);
  };
  // the parent resolved, the last component as it is
  const leaf = (p: string): string | undefined => {
    const cs = components(p);
    if (cs.length === 0) return host([]);
    const dir = chase(host, cs.slice(0, -1).join('/'));
    if (dir === undefined) return undefined;
    const last = cs.at(-1)!;
    return last === '..' ? undefined : host([...dir, last]);
  };
  return {
    root: root ?? usr ?? '/',
    resolve,
    readFile(p) {
      const h = resolve(p);
      if (h === undefined) return undefined;
      try {
        return readFileSync(h, 'utf8');
      } catch {
        return undefined;
      }
    },
    isDirectory(p) {
      const h = resolve(p);
      try {
        return h !== undefined && statSync(h, { throwIfNoEntry: false })?.isDirectory() === true;
      } catch {
        return false;
      }
    },
    readdir(p) {
      if (root === undefined && components(p).length === 0) return ['usr'];
      const h = resolve(p);
      try {
        return h === undefined ? [] : readdirSync(h);
      } catch {
        return [];
      }
    },
    lexists(p) {
      const h = leaf(p);
      try {
        return h !== undefined && lstatSync(h, { throwIfNoEntry: false }) !== undefined;
      } catch {
        return false;
      }
    },
    readlink(p) {
      const h = leaf(p);
      try {
        return h === undefined ? undefined : readlinkSync(h);
      } catch {
        return undefined;
      }
    },
  };
}

/**
 * The container's root in an image: the image's tree, or with --pivot-root=NEW the tree at NEW inside it (systemd
 * 252 pivots after mounting the image's root and /usr). A NEW the image lacks: an empty tree (the helper then fails
 * to pivot with 252's words).
 */
export function imageRootTree(view: ImageView, pivotRoot?: { newRoot: string }): Tree {
  const tree = imageTree(view);
  if (!pivotRoot) return tree;
  return nodeTree(tree.resolve(pivotRoot.newRoot) ?? '/nonexistent/nspawn-image-pivot-root');
}
