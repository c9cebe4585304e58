export * from './ebpf.js';
export * from './policy.js';
