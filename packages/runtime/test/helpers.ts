/** Shared helpers for the root integration tests (busybox trees in temp dirs, output capture, mount checks): @nspawn/test-kit. */
export { captureFiles, makeTree, mountsUnder, NSPAWN_BIN, referenceCommand, REPO, requireRoot, SYSTEMD_NSPAWN } from '@nspawn/test-kit';
