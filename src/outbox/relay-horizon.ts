import { inTransaction, type IdempotencyDatabase } from '../data/database.ts'
import { sql, type SqlFragment } from '../data/statement.ts'
import { IdempotencyErrorCode, IdempotencyStoreError } from '../errors.ts'
import { SqlState, sqlStateOf } from '../store/sql-state.ts'
import { manyKeysLock, orderingKeyLockPrefix } from './ordering-locks.ts'

/** An ordering key whose events up to `bound` (an event id) may be delivered in id order. */
export interface ReadyKey {
  orderingKey: string
  bound: string
}

/**
 * Up to `limit` ordering keys, in key order after `after` (and up to `upTo`), whose head event is
 * due and none of whose events is in flight. One statement, in a transaction of its own, so its
 * locks last only as long as it does:
 *
 * - The keys are walked through the pending (ordering_key, id) index one key at a time, so a key
 *   with a long backlog behind a head in backoff costs one index probe, not one per event.
 * - For each key whose head is due, the key's lock is tried exclusively, without waiting: it is
 *   free only when no emitting transaction of that key is open (emit() holds it shared from
 *   before its event gets an id until it ends). While it is held here, none can start, so the
 *   events with ids up to the sequence's position read now are all committed or rolled back, and
 *   a later snapshot sees every one of them: delivering them in id order can never be overtaken
 *   by an earlier event that commits late. A key whose lock is taken is passed over this round.
 */
export async function readyKeys(database: IdempotencyDatabase, schema: string, after: string, upTo: string | null, limit: number): Promise<ReadyKey[]> {
  const events = sql.id(schema, 'outbox_events')
  const withinRange = sql`(${upTo}::text is null or e.ordering_key <= ${upTo}::text)`
  // The first index entry past a key is the next key's head (the index is on ordering_key, id).
  const nextHead = (past: SqlFragment) => sql`
    select e.ordering_key, e.next_attempt_at from ${events} e
     where e.status = 'pending' and e.ordering_key > ${past} and ${withinRange}
     order by e.ordering_key, e.id limit 1`
  const query = sql`
    with recursive heads (ordering_key, next_attempt_at) as (
      (${nextHead(sql`${after}::text`)})
      union all
      select next.* from heads cross join lateral (${nextHead(sql`heads.ordering_key`)}) as next
    ), id_sequence as (
      select pg_get_serial_sequence(format('%I.%I', ${schema}::text, 'outbox_events'), 'id')::regclass as seq
    ), checked as (
      -- CASE tries its branches in order: the locks only for a due head, the position only under them.
      select heads.ordering_key,
             case when heads.next_attempt_at > now() then null
                  when not pg_try_advisory_xact_lock(hashtextextended(${manyKeysLock(schema)}::text, 0)) then null
                  when not pg_try_advisory_xact_lock(hashtextextended(${orderingKeyLockPrefix(schema)}::text || heads.ordering_key, 0)) then null
                  -- NULL when the role may not read the sequence (PostgreSQL 17 and later): -1 says so.
                  else coalesce(pg_sequence_last_value((select seq from id_sequence)), -1) end as bound
        from heads
    )
    select ordering_key::text as orderingkey, bound::text as bound from checked where bound is not null limit ${limit}::int`.toStatement()
  // Without SELECT on the sequence, PostgreSQL 17 and later answer NULL (-1 above) and earlier
  // versions refuse the statement: either way the relay says what is missing.
  const sequenceUnreadable = (cause?: unknown) =>
    new IdempotencyStoreError(
      IdempotencyErrorCode.STORE_FAILED,
      `The relay cannot read how far outbox event ids have been handed out: grant SELECT on the sequence ${schema}.outbox_events_id_seq (sql/grants.sql does).`,
      cause === undefined ? undefined : sqlStateOf(cause),
      cause,
    )
  let rows: { orderingkey: string; bound: string }[]
  try {
    // Its own transaction, at READ COMMITTED, whatever the database's default: the locks it tries
    // last only as long as this statement.
    rows = (await inTransaction(database, (session) => session.run(query), { isolation: 'read committed' })) as typeof rows
  } catch (error) {
    if (sqlStateOf(error) === SqlState.INSUFFICIENT_PRIVILEGE && String((error as Error).message).includes('outbox_events_id_seq')) throw sequenceUnreadable(error)
    throw error
  }
  if (rows.some((row) => row.bound === '-1')) throw sequenceUnreadable()
  return rows.map((row) => ({ orderingKey: row.orderingkey, bound: row.bound }))
}
