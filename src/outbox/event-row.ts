// An outbox event as the relay reads it: every column cast to text in SQL and decoded here, so a
// data layer's own type parsers (timestamps as strings, int8 as BigInt) never change what a
// publisher gets.
import type { Row } from '../data/sql-session.ts'
import { sql } from '../data/statement.ts'
import type { OutboxEvent } from './event.ts'

/**
 * The columns of `outbox_events e` the relay selects, all text, each named by one lower-case word
 * (no column-name transform of an app's data layer renames it).
 */
export const EVENT_COLUMNS = sql`e.id::text as id, e.event_id::text as eventid, e.topic::text as topic, e.ordering_key::text as orderingkey,
  e.customer_id::text as customerid, e.payload::text as payload,
  (extract(epoch from date_trunc('milliseconds', e.created_at)) * 1000)::int8::text as created, e.attempts::text as attempts`

/** One event row, decoded. */
export interface EventRow {
  /** The bigint id, as text (it orders delivery; it is never handed out). */
  id: string
  event_id: string
  topic: string
  ordering_key: string | null
  customer_id: string | null
  payload: unknown
  created_at: Date
  attempts: number
}

const textOrNull = (value: unknown): string | null => (value === null || value === undefined ? null : String(value))

/** A row of {@link EVENT_COLUMNS}, decoded. */
export function toEventRow(row: Row): EventRow {
  return {
    id: String(row.id),
    event_id: String(row.eventid),
    topic: String(row.topic),
    ordering_key: textOrNull(row.orderingkey),
    customer_id: textOrNull(row.customerid),
    payload: JSON.parse(String(row.payload)),
    created_at: new Date(Number(row.created)),
    attempts: Number(row.attempts),
  }
}

export function toEvent(row: EventRow): OutboxEvent {
  return {
    eventId: row.event_id,
    topic: row.topic,
    orderingKey: row.ordering_key,
    customerId: row.customer_id,
    payload: row.payload,
    createdAt: row.created_at,
    attempts: row.attempts,
  }
}
