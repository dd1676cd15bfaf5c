import ms from 'ms'
import { IdempotencyUsageError } from './errors.ts'

/** A duration: milliseconds, or a string such as `'24h'`, `'15m'`, `'500ms'`, `'7d'`. */
export type Duration = number | string

/** Converts a duration to whole milliseconds, refusing zero, negatives and nonsense. */
export function toMilliseconds(name: string, duration: Duration, max = Number.MAX_SAFE_INTEGER): number {
  const millis = typeof duration === 'number' ? duration : typeof duration === 'string' ? ms(duration as ms.StringValue) : Number.NaN
  if (typeof millis !== 'number' || !Number.isFinite(millis) || millis < 1 || millis > max) {
    throw new IdempotencyUsageError(`Option ${name} must be a positive duration such as '24h' or 5000 (milliseconds); got ${String(duration)}.`)
  }
  return Math.round(millis)
}
