/** systemd's siphash24(), shared with @nspawn/net: it lives in @nspawn/syscall. */
export { siphash24 } from '@nspawn/syscall';
