// pg-idempotency for kysely: the library's API with kysely's types. Also what the package's root
// exports, as it always has.
import type { Kysely, Transaction, TransactionBuilder } from 'kysely'
import type { IdempotencyKeyInput } from '../../key.ts'
import type { IdempotencyOptions, MismatchHandler as AnyMismatchHandler } from '../../options.ts'
import { withIdempotencyIn, type IdempotencyOutcome } from '../../with-idempotency.ts'
import { transactionFunctions } from '../transaction-functions.ts'
import { kyselyDatabase, kyselySession } from './session.ts'

export * from '../../core-api.ts'
export { optimizedDialect, type OptimizedDialectOptions } from './optimized-dialect.ts'
export { kyselyDatabase, kyselyDatabase as database, kyselySession } from './session.ts'
export { findCustomer, resolveCustomer } from './customers.ts'
export { idempotencyMigrationProvider } from './migration-provider.ts'

/** {@link withIdempotency}'s options; `DB` is the kysely database type. */
export type WithIdempotencyOptions<DB = unknown> = IdempotencyOptions<Transaction<DB>>
/** What a repeat with the same key but a different request gets. */
export type MismatchPolicy<DB> = 'reject' | 'replay' | MismatchHandler<DB>
/** Decides a mismatch inside the transaction; it may write through `tx`, then answer `'replay'`. */
export type MismatchHandler<DB> = AnyMismatchHandler<Transaction<DB>>

/**
 * Runs `fn` at most once per key: the claim on the key is written in the caller's transaction,
 * so it commits or rolls back together with `fn`'s writes.
 *
 * - A new key runs `fn(tx)` and stores its JSON result; `replayed: false`.
 * - A completed key returns the stored result without running `fn`; `replayed: true`.
 * - The same key with a different `request` throws `IDEMPOTENCY_KEY_MISMATCH` (see `onMismatch`).
 * - While another transaction holds the key, waits for it (see `onConcurrent`).
 * - If `fn` throws, nothing is stored and the error is rethrown; a retry runs `fn` again.
 *   Throw a {@link FinalFailure} to store and replay a failure instead.
 *
 * @example
 * ```ts
 * const outcome = await db.transaction().execute((tx) =>
 *   withIdempotency(tx, { scope: 'acct_42:POST /deposits', key, request: body }, async (tx) => {
 *     const row = await tx.insertInto('ledger').values(entry).returningAll().executeTakeFirstOrThrow()
 *     return { status: 201, body: row }
 *   }),
 * )
 * ```
 */
export async function withIdempotency<DB, T>(
  tx: Transaction<DB>,
  key: IdempotencyKeyInput,
  fn: (tx: Transaction<DB>) => Promise<T> | T,
  options?: WithIdempotencyOptions<DB>,
): Promise<IdempotencyOutcome<T>> {
  return withIdempotencyIn(kyselySession(tx), key, fn, options)
}

/**
 * `db.transaction().execute(fn)` (or `builder.execute(fn)`) that keeps the library's typed error
 * when the connection is lost (see {@link IdempotencyDatabase.transaction}).
 *
 * @example
 * ```ts
 * const outcome = await runTransaction(db, (tx) => withIdempotency(tx, key, handler))
 * ```
 */
export async function runTransaction<DB, T>(db: Kysely<DB> | TransactionBuilder<DB>, fn: (tx: Transaction<DB>) => Promise<T>): Promise<T> {
  return kyselyDatabase(db).transaction(fn)
}

// emit, withInbox and createCustomer with kysely's Transaction, from the binder every layer's entry
// point uses (docs/outbox.md, docs/customers.md). findCustomer and resolveCustomer, which take a
// Kysely instance too, are in customers.ts.
export const { emit, withInbox, createCustomer } = transactionFunctions<Transaction<any>>(kyselySession)
