import { randomUUID } from 'node:crypto'
import { Kysely, sql, type IsolationLevel } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { IdempotencyError, IdempotencyErrorCode, migrate, optimizedDialect, withIdempotency } from '../src/index.ts'
import { barrier } from './support/concurrency.ts'
import { countEntries, countKeys, createLedger, insertEntry, type LedgerDatabase } from './support/ledger.ts'
import { connect } from '../tools/databases.ts'
import { useTestDatabase } from './support/test-database.ts'

// Fewer racers than the concurrency suite's fifty: other files run at the same time, and all of
// them together must stay under the server's max_connections (100 on the machine's server).
const RACERS = 10
const database = useTestDatabase<LedgerDatabase>({ maxConnections: 2 })
let db: Kysely<LedgerDatabase>

beforeAll(async () => {
  await createLedger(database.db)
  db = connect(database.url, RACERS, { optimized: true })
})
afterAll(async () => {
  await db?.destroy()
})

/**
 * Runs `test` on an optimized pool of one connection, so consecutive calls and the checks between
 * them share one session.
 */
async function onOneConnection(test: (one: Kysely<LedgerDatabase>) => Promise<void>): Promise<void> {
  const one = connect<LedgerDatabase>(database.url, 1, { optimized: true })
  try {
    await test(one)
  } finally {
    await one.destroy()
  }
}

interface Prepared {
  name: string
  statement: string
  runs: number
}

/** The named statements of the session `tx` runs on, with how often each has run. */
async function preparedOn(tx: Kysely<any>): Promise<Prepared[]> {
  const { rows } = await sql<Prepared>`
    select name, statement, (generic_plans + custom_plans)::int as runs from pg_prepared_statements order by name`.execute(tx)
  return rows
}

const deposit = (key: string, account: string) =>
  db.transaction().execute((tx) => withIdempotency(tx, { scope: 'prepared', key, request: { account } }, async (tx) => insertEntry(tx, account, 5)))

it('prepares the claim and the stored result once per connection, and reuses them', async () => {
  const account = randomUUID()
  await onOneConnection(async (one) => {
    for (const key of [randomUUID(), randomUUID()]) {
      await one.transaction().execute((tx) => withIdempotency(tx, { scope: 'prepared', key, request: { account } }, async (tx) => insertEntry(tx, account, 5)))
    }
    const prepared = await one.connection().execute(preparedOn)
    expect(prepared.map((p) => p.name)).toEqual([expect.stringMatching(/^pg_idempotency_claim_[0-9a-f]{16}$/), expect.stringMatching(/^pg_idempotency_complete_with_commit_[0-9a-f]{16}$/)])
    expect(prepared[0]!.statement).toContain('claim_idempotency_key($1::text, $2::text, $3::bytea, $4::boolean, $5::int)')
    expect(prepared[1]!.statement).toContain('insert into "idempotency".idempotency_keys')
    // Parsed once, run twice; the business insert and BEGIN/COMMIT stay unnamed.
    expect(prepared.map((p) => p.runs)).toEqual([2, 2])
  })
})

it('replays through the prepared claim, byte for byte', async () => {
  const account = randomUUID()
  const key = randomUUID()
  const first = await deposit(key, account)
  const again = await deposit(key, account)
  expect(again).toEqual({ ...first, replayed: true })
  expect(await countEntries(db, account)).toBe(1)
})

it('prepares again on the connection that replaces one the server killed', async () => {
  const single = new pg.Pool({ connectionString: database.url, max: 1 })
  single.on('error', () => {})
  single.on('connect', (client) => client.on('error', () => {}))
  const one = new Kysely<LedgerDatabase>({ dialect: optimizedDialect({ pool: single }) })
  try {
    const account = randomUUID()
    const call = (key: string) =>
      one.transaction().execute((tx) => withIdempotency(tx, { scope: 'prepared', key, request: { account } }, async (tx) => insertEntry(tx, account, 5)))
    await call(randomUUID())
    const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(one)
    await sql`select pg_terminate_backend(${rows[0]!.pid})`.execute(database.db)
    // The pool drops its idle connection when the server closes it; the next call opens a new one.
    while (single.totalCount > 0) await new Promise((resolve) => setTimeout(resolve, 10))
    const key = randomUUID()
    await call(key)
    expect(await countKeys(one, key)).toBe(1)
    expect((await one.connection().execute(preparedOn)).map((p) => p.runs)).toEqual([1, 1])
  } finally {
    await one.destroy()
  }
})

it('recovers on the same connection when the server forgot its statements (DEALLOCATE ALL)', async () => {
  await onOneConnection(async (one) => {
    const call = () => one.transaction().execute((tx) => withIdempotency(tx, randomUUID(), async () => 'done'))
    await call()
    await sql`deallocate all`.execute(one)
    // This attempt finds its statement gone: a typed, retryable error, and the connection prepares it again.
    await expect(call()).rejects.toMatchObject({ code: IdempotencyErrorCode.STORE_FAILED, sqlState: '26000', retryable: true })
    expect(await call()).toMatchObject({ replayed: false, value: 'done' })
    expect(await call()).toMatchObject({ replayed: false, value: 'done' })
  })
})

it('prepares on a pool whose connection was opened before the dialect was made', async () => {
  const used = new pg.Pool({ connectionString: database.url, max: 1 })
  await used.query('select 1')
  const one = new Kysely<LedgerDatabase>({ dialect: optimizedDialect({ pool: used }) })
  try {
    const account = randomUUID()
    await one.transaction().execute((tx) => withIdempotency(tx, { scope: 'prepared', key: randomUUID() }, async (tx) => insertEntry(tx, account, 5)))
    expect((await one.connection().execute(preparedOn)).map((p) => p.runs)).toEqual([1, 1])
  } finally {
    await one.destroy()
  }
})

it('keeps two schemas apart on one pool: each has its own statements', async () => {
  await migrate(database.db, { schema: 'idem_prepared_other' })
  const key = randomUUID()
  const run = (schema: string, value: string) =>
    db.transaction().execute((tx) => withIdempotency(tx, { scope: 'prepared', key }, async () => value, { schema }))
  expect((await run('idempotency', 'a')).value).toBe('a')
  expect((await run('idem_prepared_other', 'b')).value).toBe('b')
  expect((await run('idempotency', 'x')).value).toBe('a')
  expect((await run('idem_prepared_other', 'x')).value).toBe('b')
})

it('reports a schema that is not migrated yet as IDEMPOTENCY_NOT_MIGRATED, and works once it is', async () => {
  const schema = 'idem_prepared_later'
  await onOneConnection(async (one) => {
    const call = () => one.transaction().execute((tx) => withIdempotency(tx, randomUUID(), async () => 'done', { schema }))
    // The named statement fails to parse on this connection; node-postgres then forgets the name.
    await expect(call()).rejects.toMatchObject({ code: IdempotencyErrorCode.NOT_MIGRATED })
    await migrate(database.db, { schema })
    expect(await call()).toMatchObject({ replayed: false, value: 'done' })
  })
})

// The claim either opens the transaction (it goes in BEGIN's message) or follows a statement.
const races = (['read committed', 'repeatable read', 'serializable'] as IsolationLevel[]).flatMap((isolation) => [
  { isolation, claimFirst: true },
  { isolation, claimFirst: false },
])
describe.each(races)('$isolation, claim first: $claimFirst: ten transactions, one key, optimized pool', ({ isolation, claimFirst }) => {
  it('runs fn exactly once; the others replay or get a typed retryable error', async () => {
    const account = randomUUID()
    const key = randomUUID()
    const start = barrier(RACERS)
    let runs = 0
    const results = await Promise.all(
      Array.from({ length: RACERS }, () =>
        db
          .transaction()
          .setIsolationLevel(isolation)
          .execute(async (tx) => {
            // REPEATABLE READ and SERIALIZABLE take their snapshot at the first statement.
            if (!claimFirst) await sql`select 1`.execute(tx)
            await start.arrive()
            return withIdempotency(tx, { scope: 'race', key, request: { account } }, async (tx) => {
              runs++
              await insertEntry(tx, account, 100)
              return { run: runs }
            })
          })
          .then(
            (outcome) => ({ outcome }),
            (error: unknown) => ({ error }),
          ),
      ),
    )
    expect(runs).toBe(1)
    expect(await countEntries(db, account)).toBe(1)
    expect(await countKeys(db, key)).toBe(1)
    for (const result of results) {
      if ('outcome' in result) {
        expect(result.outcome.value).toEqual({ run: 1 })
      } else {
        expect(result.error).toBeInstanceOf(IdempotencyError)
        expect(result.error).toMatchObject({ code: IdempotencyErrorCode.SNAPSHOT_CONFLICT, retryable: true })
      }
    }
    if (isolation === 'read committed') expect(results.every((result) => 'outcome' in result)).toBe(true)
  })
})
