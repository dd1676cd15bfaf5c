import { sql, type Kysely } from 'kysely'
import { IdempotencyUsageError } from './errors.ts'
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
  const batchSize = options.batchSize ?? 1000
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new IdempotencyUsageError(`batchSize must be a positive whole number; got ${batchSize}.`)
  const keys = sql.id(options.schema ?? DEFAULT_SCHEMA, 'idempotency_keys')
  let total = 0
  for (;;) {
    options.signal?.throwIfAborted()
    const { numAffectedRows } = await sql`
      delete from ${keys} where ctid = any(array(
        select ctid from ${keys} where expires_at < clock_timestamp() order by expires_at limit ${batchSize} for update skip locked))`.execute(db)
    const deleted = Number(numAffectedRows ?? 0n)
    total += deleted
    if (deleted < batchSize) return total
  }
}
