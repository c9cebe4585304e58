import { defineConfig } from 'vitest/config';
export default defineConfig({ test: {
    reporters: ['default', ['json', { outputFile: 'vitest-report.json' }]], include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    fileParallelism: false, testTimeout: 60000, hookTimeout: 1200000 } });
