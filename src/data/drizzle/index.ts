// pg-idempotency for Drizzle (its node-postgres and postgres.js drivers): the library's API with
// Drizzle's types.
import type { IdempotencyKeyInput } from '../../key.ts'
import type { IdempotencyOptions } from '../../options.ts'
import { withIdempotencyIn, type IdempotencyOutcome } from '../../with-idempotency.ts'
import { drizzleSession, type DrizzleTransaction } from './session.ts'

export { drizzleDatabase as database, drizzleSession, drizzleSql, type DrizzleTransaction, type TransactionOf } from './session.ts'

/**
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
export async function withIdempotency<Tx extends DrizzleTransaction, T>(
  tx: Tx,
  key: IdempotencyKeyInput,
  fn: (tx: Tx) => Promise<T> | T,
  options?: IdempotencyOptions<Tx>,
): Promise<IdempotencyOutcome<T>> {
  return withIdempotencyIn(drizzleSession(tx), key, fn, options)
}
