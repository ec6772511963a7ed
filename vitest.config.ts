import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Integration tests build network namespaces and share the machine's two cores: run files one at a time.
    fileParallelism: false,
    reporters: ['default'],
  },
});
