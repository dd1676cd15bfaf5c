import type { Kysely, Transaction, TransactionBuilder } from 'kysely'
import { hasClaimedKey } from './claim-context.ts'
import { IdempotencyError } from './errors.ts'
import { isConnectionLost } from './store/connection-lost.ts'
import { translateDatabaseError } from './store/database-errors.ts'

/**
 * `db.transaction().execute(fn)` (or `builder.execute(fn)`) that keeps the library's typed error
 * when the connection is lost. kysely answers a failure with ROLLBACK; on a dead connection that
 * fails too (harmlessly: the server has rolled back already) and kysely throws the ROLLBACK's
 * error instead of the first. Here:
 * - when `fn` failed with an {@link IdempotencyError}, that error is thrown (`retryable: true`
 *   for a lost connection, the driver's error as its `cause`);
 * - when `fn` claimed a key and the connection was lost at COMMIT (which may carry the stored
 *   result), a retryable `IDEMPOTENCY_STORE_FAILED` is thrown, the driver's error as its
 *   `cause`: the transaction may or may not have committed, and the same key tells on retry;
 * - any other outcome is exactly `execute`'s.
 *
 * @example
 * ```ts
 * const outcome = await runTransaction(db, (tx) => withIdempotency(tx, key, handler))
 * ```
 */
export async function runTransaction<DB, T>(db: Kysely<DB> | TransactionBuilder<DB>, fn: (tx: Transaction<DB>) => Promise<T>): Promise<T> {
  const builder = 'transaction' in db && typeof db.transaction === 'function' ? db.transaction() : (db as TransactionBuilder<DB>)
  let failure: unknown
  let claimed = false
  try {
    return await builder.execute(async (tx) => {
      try {
        return await fn(tx)
      } catch (error) {
        failure = error
        throw error
      } finally {
        claimed = hasClaimedKey(tx)
      }
    })
  } catch (error) {
    if (error === failure) throw error
    if (failure instanceof IdempotencyError) throw failure
    if (failure === undefined && claimed && isConnectionLost(error)) throw translateDatabaseError(error, 1)
    throw error
  }
}
