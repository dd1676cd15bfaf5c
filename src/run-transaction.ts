import type { Kysely, Transaction, TransactionBuilder } from 'kysely'
import { IdempotencyError } from './errors.ts'

/**
 * `builder.execute(fn)`, except for one case: when `fn` fails with an {@link IdempotencyError} and
 * kysely's ROLLBACK then fails too (the connection is gone, so the server has already rolled the
 * transaction back), kysely throws the ROLLBACK's error and the typed one is lost. This throws
 * the typed error instead, with its `retryable` flag and, as its `cause`, the driver's error that
 * reported the lost connection. Any other outcome is exactly `execute`'s.
 *
 * @example
 * ```ts
 * const outcome = await runTransaction(db.transaction(), (tx) => withIdempotency(tx, key, handler))
 * ```
 */
export async function runTransaction<DB, T>(builder: TransactionBuilder<DB> | Kysely<DB>, fn: (tx: Transaction<DB>) => Promise<T>): Promise<T> {
  const transaction = 'transaction' in builder && typeof builder.transaction === 'function' ? builder.transaction() : (builder as TransactionBuilder<DB>)
  let failure: unknown
  try {
    return await transaction.execute(async (tx) => {
      try {
        return await fn(tx)
      } catch (error) {
        failure = error
        throw error
      }
    })
  } catch (error) {
    throw error !== failure && failure instanceof IdempotencyError ? failure : error
  }
}
