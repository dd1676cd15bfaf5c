// pg-idempotency for postgres.js: the library's API with postgres.js's types.
import type { TransactionSql } from 'postgres'
import { transactionFunctions } from '../transaction-functions.ts'
import { postgresSession } from './session.ts'

export * from '../../core-api.ts'
export { postgresDatabase as database, postgresSession } from './session.ts'

/**
 * The transaction-level functions with this layer's types; `withIdempotency`:
 * Runs `fn` at most once per key, in the postgres.js transaction `tx`: the key's claim commits or
 * rolls back with `fn`'s writes. `sql` itself, or a reserved connection, is a type error, and
 * refused with `IDEMPOTENCY_USAGE` at run time.
 *
 * @example
 * ```ts
 * import { withIdempotency } from 'pg-idempotency/postgres'
 * const outcome = await sql.begin((tx) =>
 *   withIdempotency(tx, { scope: 'POST /deposits', key, request: body }, async (tx) => {
 *     const [row] = await tx`insert into ledger ${tx({ account, amount })} returning *`
 *     return { status: 201, body: row }
 *   }),
 * )
 * ```
 */
export const { withIdempotency, withInbox, emit, createCustomer, findCustomer, resolveCustomer } = transactionFunctions<TransactionSql<any>>(postgresSession)
