import { randomUUID } from 'node:crypto'
import { parseRetryAfter } from './retry-after.ts'
import { withRetries, type RetryDecision, type RetryOptions } from './with-retries.ts'

export interface IdempotentFetchOptions extends RetryOptions {
  /** The key for this operation; default a fresh UUID v4, made once and sent on every retry. */
  key?: string
  /** Default `'Idempotency-Key'`. */
  header?: string
  /** `'token'` (default) sends the key bare; `'structured'` as a Structured Field string (`"..."`). */
  keyStyle?: 'token' | 'structured'
  /** The `fetch` to use. Default the global one. */
  fetch?: typeof fetch
}

/**
 * `fetch` for one operation that must happen once: one idempotency key, reused on every retry.
 * Retries network errors, `5xx`, `429`, and a `409` that says the key is still in progress;
 * never other `4xx`. Returns the last response (read its status), or throws the last network
 * error. The body must be replayable (a string, bytes, URLSearchParams, FormData), not a stream.
 *
 * @example
 * ```ts
 * const response = await idempotentFetch('https://api.example/deposits', {
 *   method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ amount: 100 }),
 * }, { maxAttempts: 6, maxElapsed: '20s' })
 * ```
 */
export async function idempotentFetch(url: string | URL, init: RequestInit = {}, options: IdempotentFetchOptions = {}): Promise<Response> {
  if (init.body instanceof ReadableStream) throw new TypeError('idempotentFetch cannot retry a streamed body; pass a string or bytes.')
  const key = options.key ?? randomUUID()
  const headers = new Headers(init.headers)
  headers.set(options.header ?? 'Idempotency-Key', options.keyStyle === 'structured' ? `"${key.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"` : key)
  const doFetch = options.fetch ?? fetch
  const signal = options.signal ?? init.signal ?? undefined
  return withRetries(
    ({ signal }) => doFetch(url, { ...init, headers, ...(signal ? { signal } : {}) }),
    (outcome) => {
      // fetch reports a network failure as a TypeError; anything else is a bug to surface.
      const decision = 'error' in outcome ? { retry: outcome.error instanceof TypeError } : retryDecision(outcome.result)
      // A response we will not use still holds its connection until its body is read.
      if (decision.retry && 'result' in outcome) void outcome.result.body?.cancel().catch(() => {})
      return decision as RetryDecision
    },
    { ...options, ...(signal ? { signal } : {}) },
  )
}

/** Which responses are worth another attempt with the same key. */
export function retryDecision(response: Response): RetryDecision {
  const afterMs = parseRetryAfter(response.headers.get('retry-after'))
  // A 409 that means "retry later" comes with Retry-After (the IETF draft's in-progress answer);
  // a 409 for a key reused with another body does not, and retrying it would never succeed.
  const retry = response.status >= 500 || response.status === 429 || (response.status === 409 && afterMs !== undefined)
  return retry ? { retry: true, ...(afterMs === undefined ? {} : { afterMs }) } : { retry: false }
}
