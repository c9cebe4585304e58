export * from './tar.js';
export * from './pull.js';
