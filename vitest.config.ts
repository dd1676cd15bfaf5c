import { defineConfig } from 'vitest/config'

// The racing files each hold about fifty connections at once (fifty transactions on one key):
// they run one at a time, after the rest, so the server stays under max_connections (100 on a
// stock server, the machine's PostgreSQL included) however the other files are scheduled.
const racing = [
  'test/data-layers/**/*.test.ts',
  'test/with-idempotency.concurrency.test.ts',
  'test/customers.test.ts',
  'test/faults/pgbouncer.test.ts',
]

export default defineConfig({
  test: {
    globalSetup: ['test/support/global-setup.ts', 'test/data-layers/prisma/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    projects: [
      // Each file gets its own database; two files at a time hold at most about 40 connections.
      { extends: true, test: { name: 'parallel', include: ['test/**/*.test.ts'], exclude: racing, maxWorkers: 2, sequence: { groupOrder: 0 } } },
      { extends: true, test: { name: 'racing', include: racing, fileParallelism: false, sequence: { groupOrder: 1 } } },
    ],
  },
})
