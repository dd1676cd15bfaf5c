// pg-idempotency for Knex: the library's API with Knex's types.
import type { Knex } from 'knex'
import { transactionFunctions } from '../transaction-functions.ts'
import { knexSession } from './session.ts'

export * from '../../core-api.ts'
export { knexDatabase as database, knexSession } from './session.ts'

/**
 * The transaction-level functions with this layer's types; `withIdempotency`:
 * Runs `fn` at most once per key, in the Knex transaction `trx`: the key's claim commits or rolls
 * back with `fn`'s writes. The Knex instance (not a transaction) is a type error, and refused
 * with `IDEMPOTENCY_USAGE` at run time.
 *
 * @example
 * ```ts
 * import { withIdempotency } from 'pg-idempotency/knex'
 * const outcome = await knex.transaction((trx) =>
 *   withIdempotency(trx, { scope: 'POST /deposits', key, request: body }, async (trx) => {
 *     const [row] = await trx('ledger').insert({ account, amount }).returning('*')
 *     return { status: 201, body: row }
 *   }),
 * )
 * ```
 */
export const { withIdempotency, withInbox, emit, createCustomer, findCustomer, resolveCustomer } = transactionFunctions<Knex.Transaction>(knexSession)
