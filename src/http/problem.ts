import { IdempotencyErrorCode, IdempotencyKeyInProgressError, type IdempotencyError } from '../errors.ts'
import type { HttpResponse } from './types.ts'

/** The media type of RFC 9457 problem details. */
export const PROBLEM_CONTENT_TYPE = 'application/problem+json'

/**
 * The `type` of each problem the HTTP layer answers with, relative to `problemTypeBase`. A client
 * tells "retry later" (`idempotency-key-in-progress`, 409 with Retry-After) from "fix your
 * request" (`idempotency-key-mismatch`, 422 or 409) by this, not by the status alone.
 */
export const ProblemType = {
  KEY_MISSING: 'idempotency-key-missing',
  KEY_INVALID: 'idempotency-key-invalid',
  KEY_MISMATCH: 'idempotency-key-mismatch',
  KEY_IN_PROGRESS: 'idempotency-key-in-progress',
  REQUEST_INVALID: 'idempotency-request-invalid',
  /** The handler's result can never be stored (a NUL character, not JSON): retrying cannot help. */
  RESULT_INVALID: 'idempotency-result-invalid',
  REQUEST_TOO_LARGE: 'idempotency-request-too-large',
  /** The store was unavailable (a lost connection, a timeout); nothing was stored. Retry later. */
  SERVER_ERROR: 'idempotency-server-error',
  /** The server is set up wrongly (not migrated, the key table written around the library). */
  SERVER_FAULT: 'idempotency-server-fault',
} as const

export type ProblemType = (typeof ProblemType)[keyof typeof ProblemType]

/** Customer errors: the type is the code in kebab case (`customer-not-found`), the status its own. */
function customerProblem(base: string, error: IdempotencyError): HttpResponse {
  const type = error.code.toLowerCase().replaceAll('_', '-')
  return {
    status: error.httpStatus,
    headers: { 'content-type': PROBLEM_CONTENT_TYPE },
    body: { type: base + type, title: error.message, status: error.httpStatus, code: error.code, retryable: error.retryable },
  }
}

export const DEFAULT_PROBLEM_TYPE_BASE = 'https://pg-idempotency.dev/problems/'

const TITLES: Record<ProblemType, string> = {
  [ProblemType.KEY_MISSING]: 'Idempotency key required',
  [ProblemType.KEY_INVALID]: 'Invalid idempotency key',
  [ProblemType.KEY_MISMATCH]: 'Idempotency key reused with a different request',
  [ProblemType.KEY_IN_PROGRESS]: 'A request with this idempotency key is in progress',
  [ProblemType.REQUEST_INVALID]: 'Request body is not JSON',
  [ProblemType.RESULT_INVALID]: 'The response cannot be stored',
  [ProblemType.REQUEST_TOO_LARGE]: 'Request body too large',
  [ProblemType.SERVER_ERROR]: 'Idempotency store unavailable',
  [ProblemType.SERVER_FAULT]: 'The server cannot make this request idempotent',
}

export function problem(
  base: string,
  type: ProblemType,
  status: number,
  detail: string,
  extra: { code?: string; retryAfterSeconds?: number; retryable?: boolean } = {},
): HttpResponse {
  const headers: Record<string, string> = { 'content-type': PROBLEM_CONTENT_TYPE }
  if (extra.retryAfterSeconds !== undefined) headers['retry-after'] = String(extra.retryAfterSeconds)
  return {
    status,
    headers,
    body: {
      type: base + type,
      title: TITLES[type],
      status,
      detail,
      ...(extra.code ? { code: extra.code } : {}),
      ...(extra.retryable === undefined ? {} : { retryable: extra.retryable }),
    },
  }
}

/**
 * The problem response for an error the library raised; `mismatchStatus` is 422 or 409. The body
 * carries the error's `code` and `retryable`; a retryable error is a 409 or 5xx (a client retries
 * those), a refusal a 4xx, and a 5xx that retrying cannot fix says so in its type and `retryable`.
 * The detail is the library's own sentence, never a driver's message or SQLSTATE.
 */
export function problemFromError(base: string, error: IdempotencyError, mismatchStatus: number): HttpResponse {
  const extra = { code: error.code, retryable: error.retryable }
  switch (error.code) {
    case IdempotencyErrorCode.KEY_INVALID:
      return problem(base, ProblemType.KEY_INVALID, 400, error.message, extra)
    case IdempotencyErrorCode.REQUEST_INVALID:
      return problem(base, ProblemType.REQUEST_INVALID, 400, error.message, extra)
    case IdempotencyErrorCode.REQUEST_TOO_LARGE:
      return problem(base, ProblemType.REQUEST_TOO_LARGE, 413, error.message, extra)
    case IdempotencyErrorCode.KEY_MISMATCH:
      return problem(base, ProblemType.KEY_MISMATCH, mismatchStatus, error.message, extra)
    case IdempotencyErrorCode.KEY_IN_PROGRESS:
    case IdempotencyErrorCode.SNAPSHOT_CONFLICT: {
      const retryAfterSeconds = error instanceof IdempotencyKeyInProgressError ? error.retryAfterSeconds : 1
      return problem(base, ProblemType.KEY_IN_PROGRESS, 409, error.message, { ...extra, retryAfterSeconds })
    }
    case IdempotencyErrorCode.RESULT_INVALID:
      return problem(base, ProblemType.RESULT_INVALID, 422, 'The response to this request cannot be stored for replay (it holds a NUL character or another value JSON cannot keep); nothing was stored. Retrying will not help.', extra)
    case IdempotencyErrorCode.CUSTOMER_IDENTIFIER_INVALID:
    case IdempotencyErrorCode.CUSTOMER_IDENTIFIER_PERSONAL_DATA:
    case IdempotencyErrorCode.CUSTOMER_REFERENCE_INVALID:
    case IdempotencyErrorCode.CUSTOMER_NOT_FOUND:
    case IdempotencyErrorCode.CUSTOMER_DELETING:
      return customerProblem(base, error)
    default:
      // The store was unavailable (retry) or the server is set up wrongly (do not).
      return error.retryable
        ? problem(base, ProblemType.SERVER_ERROR, 503, 'The idempotency store was unavailable; nothing was stored. Retry later with the same key.', { ...extra, retryAfterSeconds: 1 })
        : problem(base, ProblemType.SERVER_FAULT, 500, 'The request could not be made idempotent because of a fault on the server; nothing was stored.', extra)
  }
}
