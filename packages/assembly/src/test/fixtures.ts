/** Fakes shared by the unit tests: the runtime's (a bare host, an empty tree, a base config, a base plan). */
export { bareHost, baseConfig, basePlan, emptyTree } from '@nspawn/runtime';
