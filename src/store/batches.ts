import { IdempotencyUsageError } from '../errors.ts'

/** The batch size of the library's maintenance loops: a positive whole number, 1000 by default. */
export function checkBatchSize(batchSize: number | undefined): number {
  const size = batchSize ?? 1000
  if (!Number.isInteger(size) || size < 1) throw new IdempotencyUsageError(`batchSize must be a positive whole number; got ${size}.`)
  return size
}

/**
 * Runs `deleteBatch` (one short transaction each) until a batch comes back short, checking
 * `signal` between batches; returns how many rows the batches deleted in all.
 */
export async function deleteUntilShort(batchSize: number, signal: AbortSignal | undefined, deleteBatch: () => Promise<number>): Promise<number> {
  let total = 0
  for (;;) {
    signal?.throwIfAborted()
    const deleted = await deleteBatch()
    total += deleted
    if (deleted < batchSize) return total
  }
}
