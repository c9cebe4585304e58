/** Fakes shared by the unit tests: the runtime's exported test fakes (test-fakes.ts). */
export { bareHost, baseConfig, basePlan, emptyTree } from '../test-fakes.js';
