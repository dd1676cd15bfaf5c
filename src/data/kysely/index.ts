// pg-idempotency for kysely: the library's API with kysely's types. Also what the package's root
// exports, as it always has.
import type { Kysely, Transaction, TransactionBuilder } from 'kysely'
import type { IdempotencyKeyInput } from '../../key.ts'
import { emitIn, type EmitOptions } from '../../outbox/emit.ts'
import { withInboxIn, type InboxMessage, type InboxOutcome } from '../../outbox/inbox.ts'
import type { IdempotencyOptions, MismatchHandler as AnyMismatchHandler } from '../../options.ts'
import { withIdempotencyIn, type IdempotencyOutcome } from '../../with-idempotency.ts'
import { kyselyDatabase, kyselySession } from './session.ts'

export * from '../../core-api.ts'
export { optimizedDialect, type OptimizedDialectOptions } from './optimized-dialect.ts'
export { kyselyDatabase, kyselyDatabase as database, kyselySession } from './session.ts'
export { createCustomer, findCustomer, resolveCustomer } from './customers.ts'
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

/**
 * Writes an event in `tx`, alongside the business write and the key claim: a rollback leaves no
 * event, a commit exactly one, and a replayed request (whose fn does not run) emits nothing new.
 * Inside withIdempotency's fn, the event id is derived from the idempotency key, when its claim
 * was first seen and the event's position; consumers deduplicate on it, and every redelivery
 * carries it. An id used before is refused, and so is a customer that does not exist or is being
 * deleted. Returns the event id. Anything but a transaction is refused (`IDEMPOTENCY_USAGE`).
 *
 * @example
 * ```ts
 * await withIdempotency(tx, { scope, key, request: body, customerId }, async (tx) => {
 *   const row = await tx.insertInto('ledger').values(entry).returningAll().executeTakeFirstOrThrow()
 *   await emit(tx, 'deposit.accepted', { ledgerId: row.id, amount: row.amount })
 *   return { status: 201, body: row }
 * })
 * ```
 */
export async function emit(tx: Transaction<any>, topic: string, payload: unknown, options?: EmitOptions): Promise<string> {
  return emitIn(kyselySession(tx), topic, payload, options)
}

/**
 * Applies a message exactly once: its id is claimed in `tx`, with the consumer's own writes, by
 * the same machinery as withIdempotency. A redelivered message is not applied again;
 * `duplicate: true` says so, with the value the first application returned.
 *
 * @example
 * ```ts
 * const { duplicate } = await db.transaction().execute((tx) =>
 *   withInbox(tx, { source: 'events', messageId: event.eventId }, (tx) => applyDeposit(tx, event.payload)))
 * ```
 */
export async function withInbox<DB, T>(tx: Transaction<DB>, message: InboxMessage, fn: (tx: Transaction<DB>) => Promise<T> | T): Promise<InboxOutcome<T>> {
  return withInboxIn(kyselySession(tx), message, fn)
}
