import { sql, type Kysely } from 'kysely'
import { toMilliseconds, type Duration } from '../duration.ts'
import { IdempotencyUsageError } from '../errors.ts'
import { checkBatchSize } from '../store/batches.ts'
import { DEFAULT_SCHEMA } from '../store/schema-name.ts'
import type { OutboxEvent, Publisher } from './event.ts'

export interface RelayOptions {
  db: Kysely<any>
  /** Where each event goes: by topic, with `'*'` for the rest, or a function of the event. */
  publishers: Record<string, Publisher> | ((event: OutboxEvent) => Publisher)
  schema?: string
  /** Events per batch. Default 100. */
  batchSize?: number
  /** Failed deliveries before an event is set aside as dead. Default 10. */
  maxAttempts?: number
  /** The first retry's delay; it doubles with each attempt (with jitter) up to `maxBackoff`. Default `'1s'`. */
  backoff?: Duration
  maxBackoff?: Duration
  /** How long `start()` sleeps when there is nothing to deliver. Default `'200ms'`. */
  pollInterval?: Duration
  /**
   * The longest one publish may take before it counts as failed. Default `'30s'`. While a batch is
   * open its transaction holds back every relay's view of newer events, so a hung broker must not
   * hold it for long.
   */
  publishTimeout?: Duration
  /** Called when a delivery fails (the event will be retried or is now dead). */
  onError?: (error: unknown, event: OutboxEvent) => void
}

export interface RelayRound {
  delivered: number
  failed: number
  dead: number
}

interface EventRow {
  id: string
  event_id: string
  topic: string
  ordering_key: string | null
  customer_id: string | null
  payload: unknown
  created_at: Date
  attempts: number
}

/**
 * Delivers outbox events, at least once, in order per ordering key. Each round takes a batch in
 * one transaction (`FOR UPDATE SKIP LOCKED`, so relays can run side by side), publishes, and marks
 * the delivered events in the same transaction: a relay that dies between publishing and that
 * commit leaves its events pending, and they are published again. An event whose key has an
 * earlier pending event waits for it. Failures back off exponentially; after `maxAttempts` the
 * event is marked dead and its key moves on.
 *
 * @example
 * ```ts
 * const relay = createOutboxRelay({ db, publishers: { '*': redisStreamsPublisher(redis) } })
 * relay.start()
 * // ...
 * await relay.stop()
 * ```
 */
export function createOutboxRelay(options: RelayOptions) {
  const { db } = options
  const events = sql.id(options.schema ?? DEFAULT_SCHEMA, 'outbox_events')
  const batchSize = checkBatchSize(options.batchSize ?? 100)
  const maxAttempts = options.maxAttempts ?? 10
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) throw new IdempotencyUsageError(`maxAttempts must be a positive whole number; got ${maxAttempts}.`)
  const publishTimeoutMs = toMilliseconds('publishTimeout', options.publishTimeout ?? '30s')
  const backoffMs = toMilliseconds('backoff', options.backoff ?? '1s')
  const maxBackoffMs = toMilliseconds('maxBackoff', options.maxBackoff ?? '5m')
  const pollMs = toMilliseconds('pollInterval', options.pollInterval ?? '200ms')
  const publisherFor = (event: OutboxEvent): Publisher => {
    const { publishers } = options
    if (typeof publishers === 'function') return publishers(event)
    const publisher = publishers[event.topic] ?? publishers['*']
    if (!publisher) throw new IdempotencyUsageError(`No publisher for topic ${event.topic}.`)
    return publisher
  }

  /** One batch: take, publish in order, mark. */
  async function runOnce(): Promise<RelayRound> {
    return db.transaction().execute(async (tx) => {
      // Only events older than every running transaction: an earlier event of the same key that
      // has not committed yet would otherwise be overtaken.
      const { rows } = await sql<EventRow>`
        select e.id::text, e.event_id, e.topic, e.ordering_key, e.customer_id, e.payload, e.created_at, e.attempts
          from ${events} e
         where e.status = 'pending'
           and e.next_attempt_at <= now()
           and e.txid < pg_snapshot_xmin(pg_current_snapshot())
           and (e.ordering_key is null or not exists (
                 select 1 from ${events} p where p.ordering_key = e.ordering_key and p.status = 'pending' and p.id < e.id))
         order by e.id
         limit ${batchSize}
           for update of e skip locked`.execute(tx)
      const round: RelayRound = { delivered: 0, failed: 0, dead: 0 }
      const delivered: string[] = []
      for (const row of rows) {
        const event = toEvent(row)
        try {
          await withTimeout(publisherFor(event).publish(event), publishTimeoutMs)
          delivered.push(row.id)
        } catch (error) {
          // Nothing in the failure path may fail the batch: that would roll back the marks of the
          // events already published, and they would be published again and again.
          try {
            options.onError?.(error, event)
          } catch {}
          const dead = row.attempts + 1 >= maxAttempts
          const message = String(error instanceof Error ? error.message : error).replaceAll('\u0000', '').slice(0, 1000)
          await sql`
            update ${events}
               set attempts = attempts + 1,
                   last_error = ${message},
                   status = ${dead ? 'dead' : 'pending'},
                   next_attempt_at = now() + least(${maxBackoffMs}::float8, ${backoffMs}::float8 * power(2, least(attempts, 30))) * (0.5 + random() / 2) * interval '1 millisecond'
             where id = ${row.id}::bigint`.execute(tx)
          if (dead) round.dead++
          else round.failed++
        }
      }
      if (delivered.length > 0) {
        await sql`update ${events} set status = 'delivered', delivered_at = now() where id = any(${delivered}::bigint[])`.execute(tx)
      }
      round.delivered = delivered.length
      return round
    })
  }

  let running: Promise<void> | undefined
  let stopping = false
  return {
    runOnce,
    /** Delivers until `stop()`: a full batch goes straight on, an idle one waits `pollInterval`. */
    start(): void {
      if (running) return
      stopping = false
      running = (async () => {
        while (!stopping) {
          let round: RelayRound | undefined
          try {
            round = await runOnce()
          } catch {
            round = undefined
          }
          if (!round || round.delivered + round.failed + round.dead < batchSize) await new Promise((resolve) => setTimeout(resolve, pollMs))
        }
      })()
    },
    /** Finishes the batch in hand, then stops. */
    async stop(): Promise<void> {
      stopping = true
      await running
      running = undefined
    },
  }
}

async function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([work, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`publish took longer than ${ms} ms`)), ms)))])
  } finally {
    clearTimeout(timer)
  }
}

function toEvent(row: EventRow): OutboxEvent {
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
