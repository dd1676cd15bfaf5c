import type { SqlSession } from './data/sql-session.ts'
import { IdempotencyErrorCode, IdempotencyKeyInProgressError, IdempotencyKeyMismatchError, IdempotencyUsageError } from './errors.ts'
import { ClaimContext } from './claim-context.ts'
import { lockCustomerForKey } from './customers/lock-customer.ts'
import { FinalFailure } from './final-failure.ts'
import { fingerprintRequest } from './fingerprint.ts'
import { toJsonText, type Jsonified } from './json.ts'
import { validateKey, type IdempotencyKeyInput, type ValidKey } from './key.ts'
import { resolveOptions, type ResolvedOptions, type IdempotencyOptions } from './options.ts'
import { keyStore, type ClaimRow, type KeyStore } from './store/key-store.ts'

/** What {@link withIdempotency} returns, the same on the first call and on every replay. */
export interface IdempotencyOutcome<T> {
  /** `fn`'s result (or a {@link FinalFailure}'s value) as stored: after a trip through JSON. */
  value: Jsonified<T>
  /** `true` when `fn` did not run because the key had completed before. */
  replayed: boolean
  /** `true` when the stored outcome is a {@link FinalFailure}. */
  failed: boolean
  /** When the key was first claimed, by the database clock. */
  firstSeenAt: Date
}

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
export async function withIdempotencyIn<Tx extends object, T>(
  session: SqlSession<Tx>,
  key: IdempotencyKeyInput,
  fn: (tx: Tx) => Promise<T> | T,
  options: IdempotencyOptions<Tx> = {},
): Promise<IdempotencyOutcome<T>> {
  if (typeof fn !== 'function') throw new IdempotencyUsageError('withIdempotency needs a function to run.')
  const tx = session.transaction
  const settings = resolveOptions(options)
  const valid = validateKey(key, settings.keyFormat)
  const fingerprint = fingerprintRequest(valid.request)
  // A key that names a customer is the customer's data: refused for a customer that is gone, and
  // kept from outliving a deletion that would otherwise finish while this transaction is open.
  if (valid.customerId !== null) await lockCustomerForKey(session, settings.schema, valid.customerId)
  const context = new ClaimContext(tx, valid, settings.savepoint)
  const store = keyStore(settings.schema)

  return context.track(async (runInside) => {
    const claim = await store.claim(session, valid, fingerprint, settings.wait, settings.waitTimeoutMs, settings.retryAfterSeconds)
    context.claimed(claim.created_at)
    switch (claim.outcome) {
      case 'found':
        return replay(tx, valid, fingerprint, claim, settings)
      case 'busy':
        throw new IdempotencyKeyInProgressError('A concurrent request with the same idempotency key has not finished.', settings.retryAfterSeconds)
      case 'new':
      case 'new_placeholder':
        return execute({ session, store, key: valid, fingerprint, claim, fn, settings, depth: context.depth, enclosingSavepoint: context.enclosingSavepoint, runInside })
    }
  })
}

interface Execution<Tx extends object, T> {
  session: SqlSession<Tx>
  store: KeyStore
  key: ValidKey
  fingerprint: Buffer
  claim: ClaimRow
  fn: (tx: Tx) => Promise<T> | T
  settings: ResolvedOptions<Tx>
  depth: number
  /** The savepoint depth of the innermost enclosing call that took one, if any. */
  enclosingSavepoint: number | undefined
  runInside: <R>(fn: () => R) => R
}

async function execute<Tx extends object, T>({ session, store, key, fingerprint, claim, fn, settings, depth, enclosingSavepoint, runInside }: Execution<Tx, T>): Promise<IdempotencyOutcome<T>> {
  if (settings.savepoint) await store.savepoint(session, depth)
  // From here to the stored row, any error undoes fn's writes: back to the savepoint, or (without
  // one) by failing the transaction where no savepoint fn may have left can un-fail it, so fn's
  // writes never commit without their key, even when the caller catches the error and commits.
  try {
    let value: unknown
    let failed = false
    try {
      value = await runInside(() => fn(session.transaction))
    } catch (error) {
      if (!(error instanceof FinalFailure)) throw error
      if (!settings.savepoint) {
        throw new IdempotencyUsageError("A FinalFailure needs the option { savepoint: true } to roll back the handler's writes; nothing was stored.")
      }
      await store.rollbackToSavepoint(session, depth)
      value = error.value
      failed = true
    }
    const responseJson = toJsonText(value, IdempotencyErrorCode.RESULT_INVALID)
    await store.complete(
      session,
      {
        key,
        fingerprint,
        status: failed ? 'failed' : 'completed',
        responseJson,
        ttlMs: settings.ttlMs,
        placeholder: claim.outcome === 'new_placeholder',
        mayWaitForCommit: !settings.savepoint && enclosingSavepoint === undefined,
      },
      settings.retryAfterSeconds,
    )
    return { value: JSON.parse(responseJson) as Jsonified<T>, replayed: false, failed, firstSeenAt: claim.created_at }
  } catch (error) {
    await undoQuietly(() => (settings.savepoint ? store.rollbackToSavepoint(session, depth) : store.failTransaction(session, enclosingSavepoint)))
    throw error
  }
}

async function replay<Tx extends object, T>(
  tx: Tx,
  key: ValidKey,
  fingerprint: Buffer,
  claim: ClaimRow,
  settings: ResolvedOptions<Tx>,
): Promise<IdempotencyOutcome<T>> {
  const failed = claim.status === 'failed'
  if (!fingerprint.equals(claim.fingerprint as Buffer)) {
    const policy = settings.onMismatch
    const decision =
      typeof policy === 'function'
        ? await policy({ tx, stored: claim.response, failed, request: key.request, firstSeenAt: claim.created_at })
        : policy
    if (decision !== 'replay') throw new IdempotencyKeyMismatchError(claim.created_at)
  }
  return { value: claim.response as Jsonified<T>, replayed: true, failed, firstSeenAt: claim.created_at }
}

// The original error is what the caller needs to see. The undo itself fails when it aborts the
// transaction (that is its purpose), when fn's own SQL error already aborted it, or when the
// connection died; in each case the transaction cannot commit fn's writes.
async function undoQuietly(undo: () => Promise<void>): Promise<void> {
  try {
    await undo()
  } catch {}
}
