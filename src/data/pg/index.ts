// pg-idempotency for node-postgres: the library's API with node-postgres's types.
import type { ClientBase } from 'pg'
import { transactionFunctions } from '../transaction-functions.ts'
import { pgSession } from './session.ts'

export * from '../../core-api.ts'
export { pgDatabase as database, pgSession } from './session.ts'

/**
 * The transaction-level functions with this layer's types; `withIdempotency`:
 * Runs `fn` at most once per key, in the transaction `client` is in: the key's claim commits or
 * rolls back with `fn`'s writes. `client` must be inside BEGIN (a Pool, or a client outside a
 * transaction block, is refused with `IDEMPOTENCY_USAGE` before anything runs).
 *
 * @example
 * ```ts
 * import { database, withIdempotency } from 'pg-idempotency/pg'
 * const outcome = await database(pool).transaction((client) =>
 *   withIdempotency(client, { scope: 'POST /deposits', key, request: body }, async (client) => {
 *     const { rows } = await client.query('insert into ledger (account, amount) values ($1, $2) returning id', [account, amount])
 *     return { status: 201, body: rows[0] }
 *   }),
 * )
 * ```
 */
export const { withIdempotency, withInbox, emit, createCustomer, findCustomer, resolveCustomer } = transactionFunctions<ClientBase>(pgSession)
