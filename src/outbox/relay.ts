import { inTransaction } from '../data/database.ts'
import { toDatabase, type DatabaseInput } from '../data/resolve-database.ts'
import type { SqlSession } from '../data/sql-session.ts'
import { arrayLiteral, sql } from '../data/statement.ts'
import { toMilliseconds, type Duration } from '../duration.ts'
import { IdempotencyUsageError } from '../errors.ts'
import { checkBatchSize } from '../store/batches.ts'
import { DEFAULT_SCHEMA } from '../store/schema-name.ts'
import type { OutboxEvent, Publisher } from './event.ts'
import { EVENT_COLUMNS, toEvent, toEventRow, type EventRow } from './event-row.ts'
import { readyKeys, type ReadyKey } from './relay-horizon.ts'

export interface RelayOptions {
  /** Any data layer's database (`database(pool)` from `pg-idempotency/pg`, say), or a Kysely instance. */
  db: DatabaseInput
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
   * open its events, and the events behind them in their keys, wait, so a hung broker must not
   * hold it for long.
   */
  publishTimeout?: Duration
  /** Called when a delivery fails (the event will be retried or is now dead). */
  onError?: (error: unknown, event: OutboxEvent) => void
  /**
   * Called when a round of `start()` fails as a whole (the database is unreachable, a grant is
   * missing): the relay sleeps `pollInterval` and tries again. Default: `console.error`.
   */
  onRoundError?: (error: unknown) => void
}

export interface RelayRound {
  delivered: number
  failed: number
  dead: number
}

/**
 * Delivers outbox events, at least once, in the order they were written per ordering key. Each
 * round takes a batch in one transaction (`FOR UPDATE SKIP LOCKED`, so relays can run side by
 * side), publishes, and marks the delivered events in the same transaction: a relay that dies
 * between publishing and that commit leaves its events pending, and they are published again.
 * Per key, only the oldest pending event and the ones right behind it are taken, and only when no
 * transaction that emits for the key is still open (see relay-horizon.ts); keys are served in
 * turn. Failures back off exponentially; after `maxAttempts` the event is marked dead and its key
 * moves on.
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
  const database = toDatabase(options.db)
  const schema = options.schema ?? DEFAULT_SCHEMA
  const events = sql.id(schema, 'outbox_events')
  const columns = EVENT_COLUMNS
  const onRoundError = options.onRoundError ?? ((error: unknown) => console.error('pg-idempotency outbox relay: a round failed; retrying after pollInterval.', error))
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

  // Where the walk over ordering keys goes on next round: keys are served in turn, so a key with
  // a long backlog neither starves the others nor is starved by them.
  let cursor = ''
  /** The next ready keys in walk order, and where the walk stands after them. */
  async function keysToDeliver(): Promise<{ keys: ReadyKey[]; next: string }> {
    const first = await readyKeys(database, schema, cursor, null, batchSize)
    if (first.length === batchSize) return { keys: first, next: first.at(-1)!.orderingKey }
    if (cursor === '') return { keys: first, next: '' }
    const rest = batchSize - first.length
    const wrapped = await readyKeys(database, schema, '', cursor, rest)
    return { keys: [...first, ...wrapped], next: wrapped.length === rest ? wrapped.at(-1)!.orderingKey : '' }
  }

  /** One batch: take, publish in order, mark. */
  async function runOnce(): Promise<RelayRound> {
    const { keys, next } = await keysToDeliver()
    // READ COMMITTED whatever the database's default: each statement sees what has committed
    // since the ready keys were read, and SKIP LOCKED passes over rows other relays hold.
    return inTransaction(database, async (session) => {
      // Events without an ordering key promise no order: the oldest due ones, skipping those
      // another relay holds.
      const unordered = (
        await session.run(
          sql`
        select ${columns} from ${events} e
         where e.status = 'pending' and e.ordering_key is null and e.next_attempt_at <= now()
         order by e.next_attempt_at limit ${batchSize}::int
           for update of e skip locked`.toStatement(),
        )
      ).map(toEventRow)
      // Keyed events: of each ready key, its oldest pending events up to the key's bound, several
      // per key when few keys are ready. Read first, then locked: a run keeps only the prefix this
      // relay could lock and that is still due, so a head another relay holds (or has just
      // delivered) is never overtaken by the event behind it.
      const runs = keys.length === 0 ? new Map<string, EventRow[]>() : await takeRuns(session, keys, Math.ceil(batchSize / keys.length))
      // Half the batch is kept for unkeyed events when both kinds wait, so neither starves.
      const keyedBudget = batchSize - Math.min(unordered.length, Math.floor(batchSize / 2))
      const keyed: EventRow[] = []
      // The walk goes on after the last key served: keys the budget left out come first next time.
      cursor = next
      for (const { orderingKey } of keys) {
        const run = runs.get(orderingKey) ?? []
        if (run.length > 0 && keyed.length >= keyedBudget) {
          cursor = keyed.at(-1)!.ordering_key!
          break
        }
        keyed.push(...run.slice(0, keyedBudget - keyed.length))
      }
      const batch = [...keyed, ...unordered.slice(0, batchSize - keyed.length)].sort((a, b) => (BigInt(a.id) < BigInt(b.id) ? -1 : 1))

      const round: RelayRound = { delivered: 0, failed: 0, dead: 0 }
      const delivered: string[] = []
      // A key whose event failed delivers nothing more this round: its next event must wait.
      const stopped = new Set<string>()
      for (const row of batch) {
        if (row.ordering_key !== null && stopped.has(row.ordering_key)) continue
        const event = toEvent(row)
        try {
          await withTimeout(publisherFor(event).publish(event), publishTimeoutMs)
          delivered.push(row.id)
        } catch (error) {
          if (row.ordering_key !== null) stopped.add(row.ordering_key)
          // Nothing in the failure path may fail the batch: that would roll back the marks of the
          // events already published, and they would be published again and again.
          try {
            options.onError?.(error, event)
          } catch {}
          const dead = row.attempts + 1 >= maxAttempts
          const message = String(error instanceof Error ? error.message : error).replaceAll('\u0000', '').slice(0, 1000)
          await session.run(
            sql`
            update ${events}
               set attempts = attempts + 1,
                   last_error = ${message}::text,
                   status = ${dead ? 'dead' : 'pending'}::text,
                   next_attempt_at = now() + least(${maxBackoffMs}::float8, ${backoffMs}::float8 * power(2, least(attempts, 30))) * (0.5 + random() / 2) * interval '1 millisecond'
             where id = ${row.id}::bigint`.toStatement(),
          )
          if (dead) round.dead++
          else round.failed++
        }
      }
      if (delivered.length > 0) {
        await session.run(sql`update ${events} set status = 'delivered', delivered_at = now() where id = any(${arrayLiteral(delivered)}::bigint[])`.toStatement())
      }
      round.delivered = delivered.length
      return round
    }, { isolation: 'read committed' })
  }

  /** Each key's run: its due pending events in id order, up to its bound, as far as this relay could lock them. */
  async function takeRuns(session: SqlSession, keys: ReadyKey[], perKey: number): Promise<Map<string, EventRow[]>> {
    // One statement: the runs as this snapshot has them, and which of their events this relay
    // could lock (each re-checked under its lock: still pending, still due).
    const rows = await session.run(sql`
      with runs as (
        select ${columns}
          from unnest(${arrayLiteral(keys.map((k) => k.orderingKey))}::text[], ${arrayLiteral(keys.map((k) => k.bound))}::bigint[]) as k (ordering_key, bound)
          cross join lateral (
            select * from ${events} p
             where p.status = 'pending' and p.ordering_key = k.ordering_key and p.id <= k.bound
             order by p.id limit ${perKey}::int) as e
      ), locked as (
        select l.id from ${events} l
         where l.id in (select id::bigint from runs) and l.status = 'pending' and l.next_attempt_at <= now()
           for update skip locked
      )
      select runs.*, (locked.id is not null)::text as mine
        from runs left join locked on locked.id = runs.id::bigint
       order by runs.orderingkey, runs.id::bigint`.toStatement())
    const mine = new Set(rows.filter((row) => row.mine === 'true').map((row) => String(row.id)))
    const runs = new Map<string, EventRow[]>()
    const cut = new Set<string>()
    for (const row of rows.map(toEventRow)) {
      const key = row.ordering_key!
      if (cut.has(key)) continue
      if (!mine.has(row.id)) {
        cut.add(key)
        continue
      }
      runs.set(key, [...(runs.get(key) ?? []), row])
    }
    return runs
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
          } catch (error) {
            round = undefined
            // A failing observer must not stop the loop.
            try {
              onRoundError(error)
            } catch {}
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
