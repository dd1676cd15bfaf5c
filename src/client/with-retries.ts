import { toMilliseconds, type Duration } from '../duration.ts'

export interface RetryOptions {
  /** Attempts in all, the first included. Default 5. */
  maxAttempts?: number
  /** No new attempt starts after this much time since the first. Default `'30s'`. */
  maxElapsed?: Duration
  /** The backoff cap of the first retry; doubles each time. Default `'100ms'`. */
  baseDelay?: Duration
  /** The largest backoff cap. Default `'5s'`. */
  maxDelay?: Duration
  /** Stops waiting and attempting when aborted; the abort reason is thrown. */
  signal?: AbortSignal
  /** A number in [0, 1); replace it to make delays deterministic in tests. */
  random?: () => number
  /** How to wait; replace it to record delays in tests. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>
}

/** What an attempt's result or error means: retry (after at least `afterMs`), or stop. */
export type RetryDecision = { retry: false } | { retry: true; afterMs?: number }

export interface RetryInfo {
  /** 1 for the first attempt. */
  attempt: number
  signal: AbortSignal | undefined
}

/**
 * Runs `attempt` until `decide` says stop, with exponential backoff and full jitter (a random
 * delay between 0 and the doubling cap), and never sooner than a server's `Retry-After`.
 * Bounded by attempts and by total time. Returns the last result; throws the last error.
 */
export async function withRetries<T>(
  attempt: (info: RetryInfo) => Promise<T>,
  decide: (outcome: { result: T } | { error: unknown }) => RetryDecision,
  options: RetryOptions = {},
): Promise<T> {
  const maxAttempts = options.maxAttempts ?? 5
  const maxElapsed = toMilliseconds('maxElapsed', options.maxElapsed ?? '30s')
  const baseDelay = toMilliseconds('baseDelay', options.baseDelay ?? '100ms')
  const maxDelay = toMilliseconds('maxDelay', options.maxDelay ?? '5s')
  const random = options.random ?? Math.random
  const sleep = options.sleep ?? abortableSleep
  const { signal } = options
  const started = Date.now()
  for (let number = 1; ; number++) {
    signal?.throwIfAborted()
    let outcome: { result: T } | { error: unknown }
    try {
      outcome = { result: await attempt({ attempt: number, signal }) }
    } catch (error) {
      if (signal?.aborted) throw signal.reason
      outcome = { error }
    }
    const decision = decide(outcome)
    const cap = Math.min(maxDelay, baseDelay * 2 ** (number - 1))
    const delay = decision.retry ? Math.max(decision.afterMs ?? 0, Math.floor(random() * cap)) : 0
    const last = !decision.retry || number >= maxAttempts || Date.now() - started + delay > maxElapsed
    if (last) {
      if ('error' in outcome) throw outcome.error
      return outcome.result
    }
    await sleep(delay, signal)
  }
}

function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason)
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    const onAbort = () => {
      clearTimeout(timer)
      reject(signal?.reason)
    }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
