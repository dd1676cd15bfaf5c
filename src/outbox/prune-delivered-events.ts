import { sql, type Kysely } from 'kysely'
import { toMilliseconds, type Duration } from '../duration.ts'
import { IdempotencyUsageError } from '../errors.ts'
import { DEFAULT_SCHEMA } from '../store/schema-name.ts'

export interface PruneOptions {
  schema?: string
  /** How long delivered events are kept, for inspection. Default `'7d'`. */
  olderThan?: Duration
  /** Events per batch, each batch its own short transaction. Default 1000. */
  batchSize?: number
  signal?: AbortSignal
}

/**
 * Deletes delivered outbox events older than `olderThan`, oldest first, in batches. Pending and
 * dead events stay. Returns how many it deleted.
 */
export async function pruneDeliveredEvents(db: Kysely<any>, options: PruneOptions = {}): Promise<number> {
  const batchSize = options.batchSize ?? 1000
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new IdempotencyUsageError(`batchSize must be a positive whole number; got ${batchSize}.`)
  const keepMs = toMilliseconds('olderThan', options.olderThan ?? '7d')
  const events = sql.id(options.schema ?? DEFAULT_SCHEMA, 'outbox_events')
  let total = 0
  for (;;) {
    options.signal?.throwIfAborted()
    // Delivered events are mostly the oldest ids: walking the primary key finds them first.
    const { numAffectedRows } = await sql`
      delete from ${events} where id = any(array(
        select id from ${events}
         where status = 'delivered' and delivered_at < now() - ${keepMs}::float8 * interval '1 millisecond'
         order by id limit ${batchSize} for update skip locked))`.execute(db)
    const deleted = Number(numAffectedRows ?? 0n)
    total += deleted
    if (deleted < batchSize) return total
  }
}
