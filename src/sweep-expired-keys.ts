import { sql, type Kysely } from 'kysely'
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
 */
export async function sweepExpiredKeys(db: Kysely<any>, options: SweepOptions = {}): Promise<number> {
  const batchSize = checkBatchSize(options.batchSize)
  const keys = sql.id(options.schema ?? DEFAULT_SCHEMA, 'idempotency_keys')
  return deleteUntilShort(batchSize, options.signal, async () => {
    const { numAffectedRows } = await sql`
      delete from ${keys} where ctid = any(array(
        select ctid from ${keys} where expires_at < clock_timestamp() order by expires_at limit ${batchSize} for update skip locked))`.execute(db)
    return Number(numAffectedRows ?? 0n)
  })
}
