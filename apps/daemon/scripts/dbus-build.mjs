// nspawnd's bundles (apps/daemon's and @nspawn/cli's) keep @nspawn/machined's D-Bus library apart.
import { createRequire } from 'node:module';

// the D-Bus library of @nspawn/machined (systemd hosts: nspawnd beside machined) is a bundle of its own too,
// required on the first connect only: a host without systemd never reads it (and nspawnd's bundle stays small)
export const dbusSeparate = {
  name: 'dbus-separate',
  setup(b) {
    b.onResolve({ filter: /^@jellybrick\/dbus-next$/ }, () => ({ path: './nspawn-dbus.cjs', external: true }));
  },
};
// @nspawn/cli's bundles keep @nspawn/machined itself in a file of its own as well (nspawnctl reads it only on a
// systemd host where nspawnd does not run)
export const machinedSeparate = {
  name: 'machined-separate',
  setup(b) {
    b.onResolve({ filter: /^@nspawn\/machined$/ }, () => ({ path: './nspawn-machined.cjs', external: true }));
  },
};
/** where @nspawn/machined finds its D-Bus library (for its own bundle) */
export function dbusEntry(require) {
  return createRequire(require.resolve('@nspawn/machined/package.json')).resolve('@jellybrick/dbus-next');
}

