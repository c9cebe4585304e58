import { join } from 'node:path';

/**
 * Where a native file of this package NAME (nspawn-helper, nspawn-sys; EXT: '.node' for an addon) may be, first
 * found first: beside a bundle (apps/cli/dist) the one for this architecture, else the one built there; in this
 * package native/build (built or installed here), else, installed with --ignore-scripts, the prebuilt one for this
 * architecture shipped in the tarball. (import.meta.dirname rather than URLs: a bundle maps it to __dirname, and URL
 * objects cost at start-up.)
 */
export function nativeCandidates(name: string, ext = '', dir: string = import.meta.dirname): string[] {
  return [
    join(dir, `${name}-linux-${process.arch}${ext}`),
    join(dir, `${name}${ext}`),
    join(dir, `../native/build/${name}${ext}`),
    join(dir, `../native/prebuilt/${name}-linux-${process.arch}${ext}`),
  ];
}
