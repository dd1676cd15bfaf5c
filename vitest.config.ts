import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts', 'test/data-layers/prisma/global-setup.ts'],
    // Each file gets its own database; the race tests hold up to 60 connections, so two files at
    // a time keeps the server well under max_connections (100 on a stock server).
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
})
