// What a caller of the library gets when a fault hits: a typed IdempotencyError with a stable
// code, reachable from whatever the transaction rejected with.
import { IdempotencyError, IdempotencyErrorCode } from '../../../src/index.ts'

const CODES = new Set<string>(Object.values(IdempotencyErrorCode))

/** The first IdempotencyError in `error`'s cause chain (kysely's failed ROLLBACK may wrap it). */
export function libraryErrorIn(error: unknown): IdempotencyError | undefined {
  const seen = new Set<unknown>()
  let current = error
  while (current !== undefined && current !== null && !seen.has(current)) {
    if (current instanceof IdempotencyError) return current
    seen.add(current)
    if (current instanceof AggregateError) {
      const inner = current.errors.map(libraryErrorIn).find((e) => e !== undefined)
      if (inner) return inner
    }
    current = (current as { cause?: unknown }).cause
  }
  return undefined
}

/** Whether `code` is one of the library's documented codes. */
export function isStableCode(code: unknown): boolean {
  return typeof code === 'string' && CODES.has(code)
}

/** A one-line description of an error, for violation lists. */
export function describeError(error: unknown): string {
  if (error instanceof IdempotencyError) return `${error.name} ${error.code} retryable=${error.retryable}: ${error.message}`
  const code = (error as { code?: unknown } | null)?.code
  return `${error instanceof Error ? error.name : typeof error}${code ? ` ${String(code)}` : ''}: ${error instanceof Error ? error.message : String(error)}`
}
