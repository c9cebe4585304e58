export * from './model.js';
export * from './values.js';
export * from './cli-args.js';
