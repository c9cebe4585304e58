export * from './spec.js';
export * from './translate.js';
export * from './state.js';
export * from './hooks.js';
export * from './lifecycle.js';
export * from './features.js';
export * from './exec.js';
export * from './control.js';
