/** systemd's siphash24() and SD_ID128_MAKE-style keys, shared with @nspawn/uidrange: they live in @nspawn/syscall. */
export { hexKey, siphash24 } from '@nspawn/syscall';
