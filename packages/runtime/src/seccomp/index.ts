export * from './bpf.js';
export * from './groups.js';
export * from './syscalls-x86.js';
export * from './policy.js';
export * from './filter.js';
export * from './oci-nspawn.js';
