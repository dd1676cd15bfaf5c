// Prisma wraps PostgreSQL's errors (P2010 with a DriverAdapterError inside); the Prisma session
// hands the library the SQLSTATE, so its typed errors come out as under every other layer.
import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fromPrismaError, PrismaStatementError } from '../../src/data/prisma/driver-error.ts'
import { database, prismaSession, withIdempotency } from '../../src/data/prisma/index.ts'
import { IdempotencyErrorCode } from '../../src/errors.ts'
import { isConnectionLost } from '../../src/store/connection-lost.ts'
import { SqlState, sqlStateOf } from '../../src/store/sql-state.ts'
import { barrier } from '../support/concurrency.ts'
import { useTestDatabase } from '../support/test-database.ts'
import { openPrisma } from './prisma-layer.ts'
import type { PrismaClient } from './prisma/generated/client.ts'
import type { PrismaTx } from './prisma-layer.ts'

const test = useTestDatabase({ maxConnections: 2 })
let prisma: PrismaClient

beforeAll(async () => {
  await sql`create table contract_ledger (scope text not null, amount int not null)`.execute(test.db)
  await sql`create table unique_things (id int primary key)`.execute(test.db)
  prisma = openPrisma(test.url, 4)
})
afterAll(async () => {
  await prisma?.$disconnect()
})

/** The error a statement of the library's gets when run through the Prisma session in a fresh transaction. */
async function failureOf(...statements: string[]): Promise<unknown> {
  try {
    await prisma.$transaction(async (tx) => {
      const session = prismaSession(tx)
      for (const text of statements) await session.run({ text, values: [] })
    })
  } catch (error) {
    return error
  }
  throw new Error('the statements did not fail')
}

const raise = (sqlState: string) => `do $$ begin raise exception 'raised ${sqlState}' using errcode = '${sqlState}'; end $$`

describe('a statement PostgreSQL refuses reaches the library with its SQLSTATE', () => {
  it.each([
    SqlState.SERIALIZATION_FAILURE,
    SqlState.DEADLOCK_DETECTED,
    SqlState.LOCK_NOT_AVAILABLE,
    SqlState.QUERY_CANCELED,
    SqlState.UNIQUE_VIOLATION,
    SqlState.IN_FAILED_SQL_TRANSACTION,
    SqlState.INVALID_SQL_STATEMENT_NAME,
    SqlState.FEATURE_NOT_SUPPORTED,
    SqlState.UNDEFINED_TABLE,
    SqlState.DIVISION_BY_ZERO,
    'P0001',
  ])('%s', async (sqlState) => {
    const error = await failureOf(raise(sqlState))
    expect(error).toBeInstanceOf(PrismaStatementError)
    expect(sqlStateOf(error)).toBe(sqlState)
    expect((error as Error).message).toBe(`raised ${sqlState}`)
    expect((error as Error).cause).toMatchObject({ name: 'PrismaClientKnownRequestError', code: 'P2010' })
  })

  it('as the server raises them: a unique violation, an aborted transaction, a statement timeout', async () => {
    expect(sqlStateOf(await failureOf('insert into unique_things values (1)', 'insert into unique_things values (1)'))).toBe('23505')
    expect(sqlStateOf(await failureOf('select 1/0', 'select 1'))).toBe('22012')
    expect(sqlStateOf(await failureOf("set local statement_timeout = '50ms'", 'select pg_sleep(5)::text'))).toBe('57014')
    // 25P02 needs the first error caught, as a handler might.
    const aborted = await prisma
      .$transaction(async (tx) => {
        await prismaSession(tx).run({ text: 'select 1/0', values: [] }).catch(() => {})
        await prismaSession(tx).run({ text: 'select 1', values: [] })
      })
      .catch((error: unknown) => error)
    expect(sqlStateOf(aborted)).toBe('25P02')
  })

  it("Prisma's own errors carry no SQLSTATE (P2028, an expired transaction, is not one)", async () => {
    const expired = await prisma.$transaction((tx) => prismaSession(tx).run({ text: 'select pg_sleep(0.3)::text', values: [] }), { timeout: 50 }).catch((e: unknown) => e)
    expect(expired).toMatchObject({ code: 'P2028' }) // at COMMIT, as Prisma throws it
    const mapped = fromPrismaError(expired)
    expect(mapped).toBeInstanceOf(PrismaStatementError)
    expect(sqlStateOf(mapped)).toBeUndefined()
  })

  it('maps the query engine’s shapes too (P2034, a SQLSTATE in meta) and passes other errors through untouched', () => {
    expect(sqlStateOf(fromPrismaError(Object.assign(new Error('write conflict'), { name: 'PrismaClientKnownRequestError', code: 'P2034' })))).toBe('40001')
    expect(sqlStateOf(fromPrismaError(Object.assign(new Error('raw'), { name: 'PrismaClientKnownRequestError', code: 'P2010', meta: { code: '55P03' } })))).toBe('55P03')
    expect(isConnectionLost(fromPrismaError(Object.assign(new Error('closed'), { name: 'PrismaClientKnownRequestError', code: 'P1017' })))).toBe(true)
    const driverError = Object.assign(new Error('Connection terminated unexpectedly'))
    expect(fromPrismaError(driverError)).toBe(driverError)
  })
})

describe('a lost connection is recognised', () => {
  async function terminate(pid: string) {
    const admin = new pg.Client({ connectionString: test.url })
    await admin.connect()
    try {
      await admin.query('select pg_terminate_backend($1::int)', [pid])
    } finally {
      await admin.end()
    }
  }

  it('when the backend is terminated during a statement, and when a statement follows its death', async () => {
    for (const duringStatement of [true, false]) {
      const error = await prisma
        .$transaction(async (tx) => {
          const session = prismaSession(tx)
          const [{ pid }] = (await session.run({ text: 'select pg_backend_pid()::text as pid', values: [] })) as [{ pid: string }]
          if (duringStatement) {
            const killed = new Promise((resolve) => setTimeout(resolve, 200)).then(() => terminate(pid))
            await Promise.all([session.run({ text: 'select pg_sleep(5)::text', values: [] }), killed])
          } else {
            await terminate(pid)
            await new Promise((resolve) => setTimeout(resolve, 200))
            await session.run({ text: 'select 1::text', values: [] })
          }
        })
        .catch((e: unknown) => e)
      expect(isConnectionLost(error), String(error)).toBe(true)
    }
  })

  it('under withIdempotency: the store on a dead connection is a retryable IDEMPOTENCY_STORE_FAILED, nothing is kept', async () => {
    const key = randomUUID()
    const db = database(prisma)
    const attempt = db.transaction((tx) =>
      withIdempotency(tx, key, async (tx) => {
        await tx.contract_ledger.create({ data: { scope: key, amount: 1 } })
        const [{ pid }] = await tx.$queryRawUnsafe<[{ pid: string }]>('select pg_backend_pid()::text as pid')
        await terminate(pid)
        return 'lost'
      }),
    )
    await expect(attempt).rejects.toMatchObject({ code: IdempotencyErrorCode.STORE_FAILED, retryable: true })
    await expect(db.transaction((tx) => withIdempotency(tx, key, async () => 'again'))).resolves.toMatchObject({ replayed: false, value: 'again' })
    expect((await sql<{ n: string }>`select count(*)::text as n from contract_ledger where scope = ${key}`.execute(test.db)).rows[0]!.n).toBe('0')
  })
})

it("a serialization failure at COMMIT under SERIALIZABLE reaches the caller with 40001 (database()'s transaction)", async () => {
  const db = database(prisma)
  const scope = randomUUID()
  const bothRead = barrier(2)
  const bothWrote = barrier(2)
  let secondRanToTheEnd = false
  const read = (tx: PrismaTx, which: string) => db.session(tx).run({ text: 'select count(*)::text as n from contract_ledger where scope = $1::text', values: [which] })
  const write = (tx: PrismaTx, which: string) => db.session(tx).run({ text: 'insert into contract_ledger (scope, amount) values ($1::text, 1)', values: [which] })
  // Write skew: each reads what the other writes; both write before either commits, so only a
  // COMMIT can find the cycle. PostgreSQL commits the first and refuses the second.
  const skewed = (reads: string, writes: string, beforeCommit: () => Promise<unknown>) =>
    db.transaction(
      async (tx) => {
        await read(tx, `${scope}-${reads}`)
        await bothRead.arrive()
        await write(tx, `${scope}-${writes}`)
        await bothWrote.arrive()
        await beforeCommit()
      },
      { isolation: 'serializable' },
    )
  const first = skewed('a', 'b', async () => {})
  const second = skewed('b', 'a', async () => {
    await first
    secondRanToTheEnd = true
  })
  await first
  const error = await second.then(() => undefined, (e: unknown) => e)
  expect(secondRanToTheEnd).toBe(true)
  expect(error).toBeInstanceOf(PrismaStatementError)
  expect(sqlStateOf(error)).toBe('40001')
})
