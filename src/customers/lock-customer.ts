import type { SqlSession } from '../data/sql-session.ts'
import { sql } from '../data/statement.ts'
import { CustomerNotFoundError } from '../errors.ts'
import { runStatement } from './customer-store.ts'

/**
 * What a foreign key to the customers table would do for a key row that names a customer: the
 * customer must exist (else `CUSTOMER_NOT_FOUND`: it never did, or its deletion has finished), and
 * its row stays key-share locked until the transaction ends, so the deletion's final transaction
 * (which locks the row first) waits for this one and then deletes the key it stored. A customer
 * being deleted is accepted, as a foreign key would: the deletion removes the key afterwards.
 */
export async function lockCustomerForKey(session: SqlSession, schema: string, customerId: string): Promise<void> {
  const tx = session.transaction
  const justLocked = lockedJustBefore.get(tx)
  lockedJustBefore.delete(tx)
  if (justLocked === lockName(schema, customerId)) return
  const rows = await runStatement(session, sql`select 1 as found from ${sql.id(schema, 'customers')} where customer_id = ${customerId}::uuid for key share`)
  if (!rows[0]) throw new CustomerNotFoundError()
}

// A caller that has just key-share locked a customer in a transaction, and runs nothing else in it
// before the key's call, says so here; that one call then skips its own lock (the HTTP layer's
// customer routes, which would otherwise lock the row twice per request). Consumed by the next
// call, so no savepoint rolled back in between can have released the lock it stands for.
const lockedJustBefore = new WeakMap<object, string>()
const lockName = (schema: string, customerId: string) => `${schema}\u0000${customerId}`

/** The customer's row was key-share locked in `tx` just now, with nothing run in it since. */
export function customerJustLocked(tx: object, schema: string, customerId: string): void {
  lockedJustBefore.set(tx, lockName(schema, customerId))
}
