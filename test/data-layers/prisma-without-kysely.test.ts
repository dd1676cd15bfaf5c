// A Prisma user installs no kysely: `pg-idempotency/prisma` must load and run without it. A child
// process resolves kysely as missing, then runs a first call and a replay through the Prisma
// subpath; the same child fails on kysely itself. The package root, kysely's entry point, loads
// too: it imports kysely only when a kysely statement first runs.
import { existsSync } from 'node:fs'
import { sql } from 'kysely'
import { beforeAll, expect, it } from 'vitest'
import { runCommand } from '../support/run-command.ts'
import { useTestDatabase } from '../support/test-database.ts'

const test = useTestDatabase({ maxConnections: 1 })
beforeAll(async () => {
  await sql`create table contract_ledger (scope text not null, amount int not null)`.execute(test.db)
})

const child = (entry: string) =>
  runCommand(
    process.execPath,
    ['--import', './test/data-layers/prisma/block-kysely.ts', 'test/data-layers/prisma/without-kysely.ts', entry.startsWith('.') ? new URL(entry, import.meta.url).href : entry],
    { DATABASE_URL: test.url },
  )

it('pg-idempotency/prisma loads and runs with kysely missing', async () => {
  const { stdout } = await child('../../src/data/prisma/index.ts')
  expect(JSON.parse(stdout)).toMatchObject([
    { value: { ran: true }, replayed: false },
    { value: { ran: true }, replayed: true },
  ])
})

it('the same child cannot load kysely (so the check above can fail)', async () => {
  await expect(child('kysely')).rejects.toMatchObject({ stderr: expect.stringContaining('a Prisma user has no kysely') })
})

it('the package root and every entry point load with kysely missing', async () => {
  const entries = ['index.ts', 'data/pg/index.ts', 'data/knex/index.ts', 'data/drizzle/index.ts', 'data/postgres/index.ts', 'http/express.ts', 'http/fastify.ts', 'http/hono.ts', 'outbox/index.ts', 'jobs/index.ts']
    .map((file) => new URL(`../../src/${file}`, import.meta.url))
    .filter((url) => existsSync(url))
  const script = `for (const entry of ${JSON.stringify(entries.map(String))}) await import(entry); console.log('loaded')`
  const { stdout } = await runCommand(process.execPath, ['--import', './test/data-layers/prisma/block-kysely.ts', '--input-type=module', '-e', script], {})
  expect(stdout.trim()).toBe('loaded')
})
