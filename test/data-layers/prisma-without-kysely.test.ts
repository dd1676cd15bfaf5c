// A Prisma user installs no kysely: `pg-idempotency/prisma` must load and run without it. A child
// process resolves kysely (and the package root, and the kysely adapter) as missing, then runs a
// first call and a replay through the Prisma subpath; the same child fails on the package root.
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

it.each(['kysely', '../../src/index.ts'])('the same child cannot load %s (so the check above can fail)', async (entry) => {
  await expect(child(entry)).rejects.toMatchObject({ stderr: expect.stringContaining('a Prisma user has no kysely') })
})
