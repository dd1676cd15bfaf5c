// Knex calls the transaction's callback even when its BEGIN failed: the trx it hands over is then
// already completed (and knex.transaction's promise already rejected with BEGIN's error). A
// connection lost at BEGIN (a pooled connection the server dropped, a restart) must surface as
// what it is, a lost connection, never as IDEMPOTENCY_USAGE ("not a transaction"), which is not
// retryable and which the HTTP adapters do not answer (a 500 instead of a 503 to retry).
import { randomUUID } from 'node:crypto'
import knex, { type Knex } from 'knex'
// Knex's own PostgreSQL client (untyped module), subclassed to lose the connection when BEGIN is sent.
// @ts-expect-error knex ships no declaration for its dialect modules
import PgClient from 'knex/lib/dialects/postgres/index.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { database, IdempotencyErrorCode, withIdempotency } from '../../src/data/knex/index.ts'
import { useTestDatabase } from '../support/test-database.ts'

const testDatabase = useTestDatabase()
let dropNextBegin = false
let db: Knex

class DroppingClient extends (PgClient as unknown as new (config: Knex.Config) => { _query(connection: any, obj: any): Promise<unknown> }) {
  override _query(connection: any, obj: { sql: string }) {
    if (dropNextBegin && /^BEGIN/i.test(obj.sql)) {
      dropNextBegin = false
      connection.connection.stream.destroy()
    }
    return super._query(connection, obj)
  }
}

beforeAll(() => {
  db = knex({ client: DroppingClient as never, connection: testDatabase.url, pool: { min: 0, max: 2 } })
})
afterAll(async () => {
  await db?.destroy()
})

describe('Knex: the connection lost at BEGIN', () => {
  it('is reported as a lost connection (not IDEMPOTENCY_USAGE), fn does not run, and the retry runs', async () => {
    const key = randomUUID()
    let ran = 0
    const attempt = () =>
      database(db).transaction((trx) =>
        withIdempotency(trx, { scope: 'attack-knex-begin', key }, async () => {
          ran++
          return 'done'
        }),
      )
    dropNextBegin = true
    const error = await attempt().then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(error).toBeDefined()
    expect((error as { code?: unknown }).code).not.toBe(IdempotencyErrorCode.USAGE)
    expect(ran).toBe(0)
    await expect(attempt()).resolves.toMatchObject({ value: 'done', replayed: false })
    expect(ran).toBe(1)
  })
})
