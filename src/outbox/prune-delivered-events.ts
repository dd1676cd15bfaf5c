import { inTransaction } from '../data/database.ts'
import { toDatabase, type DatabaseInput } from '../data/resolve-database.ts'
import { sql } from '../data/statement.ts'
import { toMilliseconds, type Duration } from '../duration.ts'
import { checkBatchSize, deleteUntilShort } from '../store/batches.ts'
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
export async function pruneDeliveredEvents(db: DatabaseInput, options: PruneOptions = {}): Promise<number> {
  const database = toDatabase(db)
  const batchSize = checkBatchSize(options.batchSize)
  const keepMs = toMilliseconds('olderThan', options.olderThan ?? '7d')
  const events = sql.id(options.schema ?? DEFAULT_SCHEMA, 'outbox_events')
  return deleteUntilShort(batchSize, options.signal, async () => {
    // Delivered events are mostly the oldest ids: walking the primary key finds them first.
    const [row] = await inTransaction(database, (session) =>
      session.run(
        sql`
      with deleted as (
        delete from ${events} where id = any(array(
          select id from ${events}
           where status = 'delivered' and delivered_at < now() - ${keepMs}::float8 * interval '1 millisecond'
           order by id limit ${batchSize}::int for update skip locked))
        returning 1)
      select count(*)::text as n from deleted`.toStatement(),
      ),
    )
    return Number(row?.n ?? 0)
  })
}
