/**
 * Throw a `FinalFailure` from a handler to end the request with a definite, stored outcome that
 * is not a success: a declined payment, an account that is closed. The handler's own writes are
 * rolled back (to a savepoint taken before it ran), while the key and `value` are committed and
 * replayed to every retry, exactly like a success. Any other error stores nothing, so a retry
 * runs the handler again.
 *
 * @example
 * ```ts
 * await withIdempotency(tx, key, async (tx) => {
 *   await tx.insertInto('ledger').values(entry).execute()
 *   if (balance < amount) throw new FinalFailure({ status: 402, body: { error: 'insufficient_funds' } })
 *   return { status: 201, body: entry }
 * })
 * // outcome.failed === true, outcome.value.status === 402, and no ledger row was kept
 * ```
 */
export class FinalFailure<T = unknown> extends Error {
  readonly value: T

  constructor(value: T, message = 'The request failed with a final, stored outcome.') {
    super(message)
    this.name = 'FinalFailure'
    this.value = value
  }
}
