import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import pg from 'pg'
import type { PgBoss } from 'pg-boss'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createCustomer, deleteCustomerData, IdempotencyErrorCode, withIdempotency } from '../../src/index.ts'
import { requestCustomerDeletion } from '../../src/jobs/index.ts'
import { Latch } from '../support/concurrency.ts'
import { useTestDatabase } from '../support/test-database.ts'
import { startDeletionBoss, stopBoss } from '../support/deletion-boss.ts'

// docs/customers.md: "`withIdempotency` callers pass `customerId` with the key for the same effect"
// as a `customer: true` route, whose key can never outlive the customer's deletion. A key stored
// with the id of a deleted customer is a stored response the deletion never removes.

const database = useTestDatabase({ maxConnections: 10 })
let boss: PgBoss

beforeAll(async () => {
  boss = await startDeletionBoss(database.url, 2)
})
afterAll(async () => {
  await stopBoss(boss)
})

async function newCustomer() {
  const clientId = randomUUID()
  const { customer } = await database.db.transaction().execute((tx) => createCustomer(tx, { clientId, idempotentIdentifier: `ref-${randomUUID()}` }))
  return { clientId, id: customer.customerId }
}

async function keysOf(id: string): Promise<number> {
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from idempotency.idempotency_keys where customer_id = ${id}::uuid`.execute(database.db)
  return rows[0]!.n
}

/** Resolves once some statement of this database waits for a lock, or once `done` settles. */
async function untilSomeoneWaits(url: string, done: Promise<unknown>): Promise<void> {
  let settled = false
  void done.finally(() => (settled = true)).catch(() => undefined)
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    while (!settled) {
      const { rows } = await client.query<{ n: number }>(
        `select count(*)::int as n from pg_locks where not granted and database = (select oid from pg_database where datname = current_database())
            or (not granted and locktype = 'transactionid')`,
      )
      if (rows[0]!.n > 0) return
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  } finally {
    await client.end()
  }
}

describe('withIdempotency with a customerId against the customer deletion', () => {
  it('refuses a key for a customer whose deletion has finished, as emit does', async () => {
    const { clientId, id } = await newCustomer()
    await requestCustomerDeletion(database.db, boss, { clientId, customerId: id })
    await deleteCustomerData(database.db, id)
    const claim = database.db.transaction().execute((tx) => withIdempotency(tx, { key: randomUUID(), customerId: id }, async () => ({ secret: 'of the deleted customer' })))
    await expect(claim).rejects.toMatchObject({ code: IdempotencyErrorCode.CUSTOMER_NOT_FOUND })
    expect(await keysOf(id)).toBe(0)
  })

  it('leaves no key behind when the deletion finishes while the request that claimed it is still open', async () => {
    const { clientId, id } = await newCustomer()
    const latch = new Latch()
    // The request began while its customer was active; the deletion is requested and runs under it.
    const request = database.db
      .transaction()
      .execute((tx) => withIdempotency(tx, { key: randomUUID(), customerId: id }, async () => (await latch.hold(), { secret: 'of the customer' })))
      .catch((error: unknown) => error)
    await latch.entered
    await requestCustomerDeletion(database.db, boss, { clientId, customerId: id })
    const deletion = deleteCustomerData(database.db, id)
    // Either the deletion waits for the request (as it does for a customer: true route), or it finishes under it.
    await untilSomeoneWaits(database.url, deletion)
    latch.release()
    await request
    await deletion
    expect(await keysOf(id)).toBe(0)
  })
})
