export * from './protocol.js';
export * from './host.js';
export * from './users.js';
export * from './plan.js';
export * from './prepare.js';
export * from './run.js';
export * from './random.js';
