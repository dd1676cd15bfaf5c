import type { Transaction } from 'kysely'
import type { Duration } from '../duration.ts'
import type { Jsonified } from '../json.ts'
import { withIdempotency } from '../data/kysely/index.ts'

export interface InboxMessage {
  /** Where the message came from (a stream, a queue): message ids are unique within it. */
  source: string
  messageId: string
  /** How long a message id is remembered. Default `'30d'`; keep it longer than any redelivery. */
  ttl?: Duration
  schema?: string
}

/**
 * Applies a message exactly once: its id is claimed in the same transaction as the consumer's own
 * writes, by the same machinery as withIdempotency. A redelivered message is not applied again;
 * `duplicate: true` says so, with the value the first application returned.
 *
 * @example
 * ```ts
 * const { duplicate } = await db.transaction().execute((tx) =>
 *   withInbox(tx, { source: 'events', messageId: event.eventId }, (tx) => applyDeposit(tx, event.payload)))
 * ```
 */
export async function withInbox<DB, T>(
  tx: Transaction<DB>,
  message: InboxMessage,
  fn: (tx: Transaction<DB>) => Promise<T> | T,
): Promise<{ value: Jsonified<T>; duplicate: boolean }> {
  const outcome = await withIdempotency(tx, { scope: `inbox:${message.source}`, key: message.messageId }, fn, {
    ttl: message.ttl ?? '30d',
    // Redeliveries wait for the first to finish rather than fail.
    onConcurrent: 'wait',
    ...(message.schema === undefined ? {} : { schema: message.schema }),
  })
  return { value: outcome.value, duplicate: outcome.replayed }
}
