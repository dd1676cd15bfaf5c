import { toMilliseconds, type Duration } from './duration.ts'
import { IdempotencyUsageError } from './errors.ts'
import type { KeyFormat } from './key.ts'
import { DEFAULT_SCHEMA } from './store/schema-name.ts'

/** What a repeat with the same key but a different request gets. */
export type MismatchPolicy<Tx> = 'reject' | 'replay' | MismatchHandler<Tx>

/**
 * Decides a mismatch inside the transaction. It may write through `tx` (apply a changed field to
 * the existing object, say) and then answer `'replay'` to return the stored value.
 */
export type MismatchHandler<Tx> = (mismatch: {
  /** The caller's transaction, as its data layer knows it. */
  tx: Tx
  /** The value stored by the first request. */
  stored: unknown
  /** Whether the first request ended in a {@link FinalFailure}. */
  failed: boolean
  /** The new request, as given. */
  request: unknown
  firstSeenAt: Date
}) => 'replay' | 'reject' | Promise<'replay' | 'reject'>

/** `Tx` is the data layer's transaction type, handed to an `onMismatch` function. */
export interface IdempotencyOptions<Tx = unknown> {
  /** How long a completed key is replayed. Default `'24h'`. */
  ttl?: Duration
  /** Same key, different request. Default `'reject'` (throws `IDEMPOTENCY_KEY_MISMATCH`). */
  onMismatch?: MismatchPolicy<Tx>
  /**
   * Same key while another transaction holds it. `'wait'` (default) blocks until that one
   * finishes, then replays its result, or runs `fn` if it rolled back. `'reject'` throws
   * `IDEMPOTENCY_KEY_IN_PROGRESS` at once.
   */
  onConcurrent?: 'wait' | 'reject'
  /** The longest `'wait'` blocks before throwing `IDEMPOTENCY_KEY_IN_PROGRESS`. Default `'10s'`. */
  waitTimeout?: Duration
  /** The `retryAfterSeconds` suggested with `IDEMPOTENCY_KEY_IN_PROGRESS`. Default 1. */
  retryAfterSeconds?: number
  /** Accept any key (default), only RFC 4122 UUIDs, or only version 4 UUIDs. */
  keyFormat?: KeyFormat
  /** Where the migrations put the key table. Default `'idempotency'`. */
  schema?: string
  /**
   * Take a savepoint before `fn` (one more round trip per first call), so that a
   * {@link FinalFailure} can roll back only `fn`'s writes and store the failure, and so that any
   * other error in `fn` undoes `fn`'s writes while the transaction stays usable. Default `false`:
   * an error after `fn` started fails the whole transaction instead, and a `FinalFailure` throws
   * `IDEMPOTENCY_USAGE`.
   */
  savepoint?: boolean
}

export interface ResolvedOptions<Tx> {
  ttlMs: number
  onMismatch: MismatchPolicy<Tx>
  wait: boolean
  waitTimeoutMs: number
  retryAfterSeconds: number
  keyFormat: KeyFormat
  schema: string
  savepoint: boolean
}

// PostgreSQL's lock_timeout is an int of milliseconds.
const MAX_WAIT_TIMEOUT_MS = 2_147_483_647
// Far enough to be "forever" for a key, near enough for timestamptz arithmetic.
const MAX_TTL_MS = 100 * 365 * 24 * 3600 * 1000

/** Checks the options and fills in the defaults. */
export function resolveOptions<Tx>(options: IdempotencyOptions<Tx>): ResolvedOptions<Tx> {
  const onMismatch = options.onMismatch ?? 'reject'
  if (onMismatch !== 'reject' && onMismatch !== 'replay' && typeof onMismatch !== 'function') {
    throw new IdempotencyUsageError(`Option onMismatch must be 'reject', 'replay' or a function; got ${String(onMismatch)}.`)
  }
  const onConcurrent = options.onConcurrent ?? 'wait'
  if (onConcurrent !== 'wait' && onConcurrent !== 'reject') {
    throw new IdempotencyUsageError(`Option onConcurrent must be 'wait' or 'reject'; got ${String(onConcurrent)}.`)
  }
  const keyFormat = options.keyFormat ?? 'any'
  if (keyFormat !== 'any' && keyFormat !== 'uuid' && keyFormat !== 'uuid-v4') {
    throw new IdempotencyUsageError(`Option keyFormat must be 'any', 'uuid' or 'uuid-v4'; got ${String(keyFormat)}.`)
  }
  const retryAfterSeconds = options.retryAfterSeconds ?? 1
  if (!Number.isInteger(retryAfterSeconds) || retryAfterSeconds < 0) {
    throw new IdempotencyUsageError(`Option retryAfterSeconds must be a whole number of seconds; got ${String(retryAfterSeconds)}.`)
  }
  return {
    ttlMs: toMilliseconds('ttl', options.ttl ?? '24h', MAX_TTL_MS),
    onMismatch,
    wait: onConcurrent === 'wait',
    waitTimeoutMs: toMilliseconds('waitTimeout', options.waitTimeout ?? '10s', MAX_WAIT_TIMEOUT_MS),
    retryAfterSeconds,
    keyFormat,
    schema: options.schema ?? DEFAULT_SCHEMA,
    savepoint: options.savepoint ?? false,
  }
}
