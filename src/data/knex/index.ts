// pg-idempotency for Knex: the library's API with Knex's types.
import type { Knex } from 'knex'
import type { IdempotencyKeyInput } from '../../key.ts'
import type { IdempotencyOptions } from '../../options.ts'
import { withIdempotencyIn, type IdempotencyOutcome } from '../../with-idempotency.ts'
import { knexSession } from './session.ts'

export { knexDatabase as database, knexSession } from './session.ts'

/**
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
export async function withIdempotency<Trx extends Knex.Transaction, T>(
  trx: Trx,
  key: IdempotencyKeyInput,
  fn: (trx: Trx) => Promise<T> | T,
  options?: IdempotencyOptions<Trx>,
): Promise<IdempotencyOutcome<T>> {
  return withIdempotencyIn(knexSession(trx), key, fn, options)
}
