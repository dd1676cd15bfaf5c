// The lock a key that names a customer takes, and the one it may skip: the HTTP layer's customer
// routes lock the row when they resolve the customer, and say so for the claim that follows.
import { randomUUID } from 'node:crypto'
import { expect, it } from 'vitest'
import { customerJustLocked, lockCustomerForKey } from '../src/customers/lock-customer.ts'
import { kyselySession } from '../src/data/kysely/session.ts'
import { IdempotencyErrorCode } from '../src/index.ts'
import { useTestDatabase } from './support/test-database.ts'

const database = useTestDatabase()

it('skips its statement only for the customer just locked, and only once', async () => {
  // No such customer: a statement that runs refuses it, so a skip shows as no refusal.
  const absent = randomUUID()
  await database.db.transaction().execute(async (tx) => {
    customerJustLocked(tx, 'idempotency', absent)
    await expect(lockCustomerForKey(kyselySession(tx), 'idempotency', absent)).resolves.toBeUndefined()
    await expect(lockCustomerForKey(kyselySession(tx), 'idempotency', absent)).rejects.toMatchObject({ code: IdempotencyErrorCode.CUSTOMER_NOT_FOUND })
  })
  await database.db.transaction().execute(async (tx) => {
    customerJustLocked(tx, 'idempotency', randomUUID())
    await expect(lockCustomerForKey(kyselySession(tx), 'idempotency', absent)).rejects.toMatchObject({ code: IdempotencyErrorCode.CUSTOMER_NOT_FOUND })
  })
  await database.db.transaction().execute(async (tx) => {
    customerJustLocked(tx, 'other_schema', absent)
    await expect(lockCustomerForKey(kyselySession(tx), 'idempotency', absent)).rejects.toMatchObject({ code: IdempotencyErrorCode.CUSTOMER_NOT_FOUND })
  })
})
