// pg-idempotency for Drizzle (its node-postgres and postgres.js drivers): the library's API with
// Drizzle's types.
import { transactionFunctions } from '../transaction-functions.ts'
import { drizzleSession, type DrizzleTransaction } from './session.ts'

export * from '../../core-api.ts'
export { drizzleDatabase as database, drizzleSession, drizzleSql, type DrizzleTransaction, type DrizzleTransactionOf } from './session.ts'

/**
 * The transaction-level functions with this layer's types; `withIdempotency`:
 * Runs `fn` at most once per key, in the Drizzle transaction `tx`: the key's claim commits or
 * rolls back with `fn`'s writes. The database (not a transaction) is a type error, and refused
 * with `IDEMPOTENCY_USAGE` at run time.
 *
 * @example
 * ```ts
 * import { withIdempotency } from 'pg-idempotency/drizzle'
 * const outcome = await db.transaction((tx) =>
 *   withIdempotency(tx, { scope: 'POST /deposits', key, request: body }, async (tx) => {
 *     const [row] = await tx.insert(ledger).values({ account, amount }).returning()
 *     return { status: 201, body: row }
 *   }),
 * )
 * ```
 */
export const { withIdempotency, withInbox, emit, createCustomer, findCustomer, resolveCustomer } = transactionFunctions<DrizzleTransaction>(drizzleSession)
