import { defineConfig } from 'vitest/config';
export default defineConfig({ test: {
    reporters: ['default', ['json', { outputFile: 'vitest-report.json' }]], setupFiles: ['@nspawn/test-kit/reference-cgroup-setup'], include: ['src/**/*.test.ts'] } });
