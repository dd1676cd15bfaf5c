import type { SqlSession } from '../data/sql-session.ts'
import type { Duration } from '../duration.ts'
import type { Jsonified } from '../json.ts'
import { withIdempotencyIn } from '../with-idempotency.ts'

export interface InboxMessage {
  /** Where the message came from (a stream, a queue): message ids are unique within it. */
  source: string
  messageId: string
  /** How long a message id is remembered. Default `'30d'`; keep it longer than any redelivery. */
  ttl?: Duration
  schema?: string
}

/** What {@link withInboxIn} answers: the first application's value, and whether this was a redelivery. */
export interface InboxOutcome<T> {
  value: Jsonified<T>
  duplicate: boolean
}

/**
 * Applies a message exactly once: its id is claimed in the same transaction as the consumer's own
 * writes (the caller's, through its {@link SqlSession}), by the same machinery as
 * withIdempotency. A redelivered message is not applied again; `duplicate: true` says so, with
 * the value the first application returned. kysely users call `withInbox(tx, …)` from the
 * package's root.
 *
 * @example
 * ```ts
 * const { duplicate } = await inTransaction(database, (session) =>
 *   withInboxIn(session, { source: 'events', messageId: event.eventId }, (tx) => applyDeposit(tx, event.payload)))
 * ```
 */
export async function withInboxIn<Tx extends object, T>(
  session: SqlSession<Tx>,
  message: InboxMessage,
  fn: (tx: Tx) => Promise<T> | T,
): Promise<InboxOutcome<T>> {
  const outcome = await withIdempotencyIn(session, { scope: `inbox:${message.source}`, key: message.messageId }, fn, {
    ttl: message.ttl ?? '30d',
    // Redeliveries wait for the first to finish rather than fail.
    onConcurrent: 'wait',
    ...(message.schema === undefined ? {} : { schema: message.schema }),
  })
  return { value: outcome.value, duplicate: outcome.replayed }
}
