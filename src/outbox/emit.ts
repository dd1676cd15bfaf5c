import { v4 as uuidv4, v5 as uuidv5, validate as isUuid } from 'uuid'
import { currentClaim, currentCustomer } from '../claim-context.ts'
import type { SqlSession } from '../data/sql-session.ts'
import { arrayLiteral, sql } from '../data/statement.ts'
import { CustomerDeletingError, CustomerNotFoundError, IdempotencyErrorCode, IdempotencyJsonError } from '../errors.ts'
import { toJsonText } from '../json.ts'
import { checkOpaqueText } from '../key.ts'
import { SqlState, sqlStateOf } from '../store/sql-state.ts'
import { translateDatabaseError } from '../store/database-errors.ts'
import { DEFAULT_SCHEMA } from '../store/schema-name.ts'
import { locksForEmit } from './ordering-locks.ts'

export interface EmitOptions {
  /** The event's id. Default: derived from the enclosing idempotency key, else random. */
  eventId?: string
  /**
   * Default: the customer id of the enclosing idempotency key. It must name an existing customer
   * (a foreign key): otherwise `CUSTOMER_NOT_FOUND`, or `CUSTOMER_DELETING` while it is deleted.
   */
  customerId?: string
  /**
   * Events with one ordering key are delivered in the order they were written. Default: the
   * customer id. The key's lock is held (shared) until the transaction ends; see docs/outbox.md.
   */
  orderingKey?: string
  schema?: string
}

// Event ids derived from idempotency keys are name-based UUIDs (v5) in this namespace.
const EVENT_NAMESPACE = 'c3f4e2a8-5a53-4c1f-9b3e-7d7f1f0c2a11'

const invalid = (message: string) => new IdempotencyJsonError(IdempotencyErrorCode.EVENT_INVALID, '$', message)

/**
 * Writes an event in the caller's transaction (through its {@link SqlSession}), alongside the
 * business write and the key claim: a rollback leaves no event, a commit exactly one, and a
 * replayed request (whose fn does not run) emits nothing new. Inside withIdempotency's fn on the
 * same transaction, the event id is derived from the idempotency key, when its claim was first
 * seen and the event's position; consumers deduplicate on it, and every redelivery carries it. An
 * id used before is refused, and so is a customer that does not exist or is being deleted.
 * Returns the event id. kysely users call `emit(tx, …)` from the package's root.
 *
 * @example
 * ```ts
 * await withIdempotencyIn(session, { scope, key, request: body, customerId }, async (tx) => {
 *   await insertLedgerRow(tx, entry)
 *   await emitIn(session, 'deposit.accepted', { amount: entry.amount })
 *   return { status: 201 }
 * })
 * ```
 */
export async function emitIn(session: SqlSession, topic: string, payload: unknown, options: EmitOptions = {}): Promise<string> {
  const tx = session.transaction
  checkOpaqueText('event topic', topic, 255, invalid)
  const payloadJson = toJsonText(payload, IdempotencyErrorCode.EVENT_INVALID)
  const claim = currentClaim(tx)
  const customerId = options.customerId ?? currentCustomer(tx)
  if (customerId !== null && !isUuid(customerId)) throw invalid('the customer id must be a UUID')
  if (options.eventId !== undefined && !isUuid(options.eventId)) throw invalid('the event id must be a UUID')
  const orderingKey = options.orderingKey ?? customerId
  if (orderingKey !== null) checkOpaqueText('event ordering key', orderingKey, 255, invalid)
  // The key and the moment its claim was first seen: the same key reused after it expired is a
  // new request, and its events get new ids.
  const eventId =
    options.eventId ??
    (claim?.firstSeenAt ? uuidv5(`${claim.scope}\n${claim.key}\n${claim.firstSeenAt.toISOString()}\n${claim.emitted++}`, EVENT_NAMESPACE) : uuidv4())
  const schema = options.schema ?? DEFAULT_SCHEMA
  let row: Record<string, unknown> | undefined
  try {
    // The customer's row is share-locked as a foreign key would (the table has one too): the
    // deletion's final transaction then waits for this one and deletes its event, and one that
    // has finished leaves no row, so the event is refused. The ordering key's lock is taken before
    // the event gets its id and held until the transaction ends: the relay delivers no event of a
    // key while an earlier one may still be in flight (ordering-locks.ts).
    const locks = locksForEmit(tx, schema, orderingKey)
    ;[row] = await session.run(
      sql`
      with customer as (
        select status from ${sql.id(schema, 'customers')} where customer_id = ${customerId}::uuid for key share
      ), locked as (
        select pg_advisory_xact_lock_shared(hashtextextended(lock, 0)) from unnest(${arrayLiteral(locks)}::text[]) as lock
      ), inserted as (
        insert into ${sql.id(schema, 'outbox_events')} (event_id, topic, ordering_key, customer_id, payload)
        select ${eventId}::uuid, ${topic}::text, ${orderingKey}::text, ${customerId}::uuid, ${payloadJson}::jsonb
          from (select count(*) from locked) as after_the_locks
         where ${customerId}::uuid is null or exists (select 1 from customer where status = 'active')
        returning event_id
      )
      select (select event_id::text from inserted) as eventid, (select status::text from customer) as status`.toStatement(),
    )
  } catch (error) {
    const state = sqlStateOf(error)
    if (state === SqlState.UNIQUE_VIOLATION) throw invalid(`the event id ${eventId} was used before`)
    if (state === SqlState.FOREIGN_KEY_VIOLATION) throw new CustomerNotFoundError()
    throw translateDatabaseError(error, 1)
  }
  if (!row?.eventid) {
    // Never retryable: a customer being deleted never comes back, and an id with no row is
    // either deleted or never was.
    if (row?.status === 'deleting') throw new CustomerDeletingError(customerId!, 410)
    throw new CustomerNotFoundError()
  }
  return eventId
}
