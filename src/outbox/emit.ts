import { sql, type Transaction } from 'kysely'
import { v4 as uuidv4, v5 as uuidv5, validate as isUuid } from 'uuid'
import { currentClaim, currentCustomer } from '../claim-context.ts'
import { CustomerDeletingError, IdempotencyErrorCode, IdempotencyJsonError, IdempotencyUsageError } from '../errors.ts'
import { toJsonText } from '../json.ts'
import { checkOpaqueText } from '../key.ts'
import { SqlState, sqlStateOf } from '../store/sql-state.ts'
import { translateDatabaseError } from '../store/database-errors.ts'
import { DEFAULT_SCHEMA } from '../store/schema-name.ts'

export interface EmitOptions {
  /** The event's id. Default: derived from the enclosing idempotency key, else random. */
  eventId?: string
  /** Default: the customer id of the enclosing idempotency key. */
  customerId?: string
  /** Events with one ordering key are delivered in order. Default: the customer id. */
  orderingKey?: string
  schema?: string
}

// Event ids derived from idempotency keys are name-based UUIDs (v5) in this namespace.
const EVENT_NAMESPACE = 'c3f4e2a8-5a53-4c1f-9b3e-7d7f1f0c2a11'

const invalid = (message: string) => new IdempotencyJsonError(IdempotencyErrorCode.EVENT_INVALID, '$', message)

/**
 * Writes an event in the caller's transaction, alongside the business write and the key claim: a
 * rollback leaves no event, a commit exactly one, and a replayed request (whose fn does not run)
 * emits nothing new. Inside withIdempotency's fn, the event id is derived from the idempotency key,
 * when its claim was first seen and the event's position; consumers deduplicate on it, and every
 * redelivery carries it. An id used before is refused. Returns the event id.
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
export async function emit(tx: Transaction<any>, topic: string, payload: unknown, options: EmitOptions = {}): Promise<string> {
  if ((tx as { isTransaction?: unknown } | null)?.isTransaction !== true) {
    throw new IdempotencyUsageError('emit must run inside a transaction: pass the `tx` the business write uses.')
  }
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
  let inserted: unknown[]
  try {
    // The customer's row, if the customers table has one, is share-locked like a foreign key
    // would: a deletion's final transaction then waits for this one and deletes its event, and
    // a customer already being deleted gets no new event.
    ;({ rows: inserted } = await sql`
      with customer as (
        select status from ${sql.id(schema, 'customers')} where customer_id = ${customerId}::uuid for key share
      )
      insert into ${sql.id(schema, 'outbox_events')} (event_id, topic, ordering_key, customer_id, payload)
      select ${eventId}::uuid, ${topic}, ${orderingKey}, ${customerId}::uuid, ${payloadJson}::jsonb
       where not exists (select 1 from customer where status = 'deleting')
      returning event_id`.execute(tx))
  } catch (error) {
    if (sqlStateOf(error) === SqlState.UNIQUE_VIOLATION) throw invalid(`the event id ${eventId} was used before`)
    throw translateDatabaseError(error, 1)
  }
  if (inserted.length === 0) throw new CustomerDeletingError(customerId!, 410)
  return eventId
}
