import { defineConfig } from 'vitest/config';
export default defineConfig({ test: {
    reporters: ['default', ['json', { outputFile: 'vitest-report.json' }]], include: ['test/**/*.test.ts'],
    globalSetup: ['test/build-first.ts'], testTimeout: 300000, hookTimeout: 600000, fileParallelism: false } });
