import { inTransaction } from './data/database.ts'
import { toDatabase, type DatabaseInput } from './data/resolve-database.ts'
import { sql } from './data/statement.ts'
import { checkBatchSize, deleteUntilShort } from './store/batches.ts'
import { DEFAULT_SCHEMA } from './store/schema-name.ts'

export interface SweepOptions {
  schema?: string
  /** Keys per batch, each batch its own short transaction. Default 1000. */
  batchSize?: number
  /** Stops between batches. */
  signal?: AbortSignal
}

/**
 * Deletes expired idempotency keys, oldest first, in batches. Rows another transaction holds are
 * skipped (`FOR UPDATE SKIP LOCKED`), so the sweep never makes a live claim wait; an expired key
 * is already treated as new without it. Returns how many keys it deleted.
 *
 * `db` is any data layer's database (`database(…)` from its subpath) or a Kysely instance.
 */
export async function sweepExpiredKeys(db: DatabaseInput, options: SweepOptions = {}): Promise<number> {
  const batchSize = checkBatchSize(options.batchSize)
  const keys = sql.id(options.schema ?? DEFAULT_SCHEMA, 'idempotency_keys')
  const database = toDatabase(db)
  const batch = sql`
    with deleted as (
      delete from ${keys} where ctid = any(array(
        select ctid from ${keys} where expires_at < clock_timestamp() order by expires_at limit ${batchSize}::int for update skip locked))
      returning 1)
    select count(*)::text as n from deleted`.toStatement()
  return deleteUntilShort(batchSize, options.signal, async () => {
    const rows = await inTransaction(database, (session) => session.run(batch))
    return Number(rows[0]?.n ?? 0)
  })
}
