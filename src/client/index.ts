// The retrying client: `pg-idempotency/client`. No database or framework imports.
export { idempotentFetch, retryDecision, type IdempotentFetchOptions } from './idempotent-fetch.ts'
export { withRetries, type RetryOptions, type RetryDecision, type RetryInfo } from './with-retries.ts'
export { parseRetryAfter } from './retry-after.ts'
