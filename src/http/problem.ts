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
  REQUEST_TOO_LARGE: 'idempotency-request-too-large',
  SERVER_ERROR: 'idempotency-server-error',
} as const

export type ProblemType = (typeof ProblemType)[keyof typeof ProblemType]

/** Customer errors: the type is the code in kebab case (`customer-not-found`), the status its own. */
function customerProblem(base: string, error: IdempotencyError): HttpResponse {
  const type = error.code.toLowerCase().replaceAll('_', '-')
  return {
    status: error.httpStatus,
    headers: { 'content-type': PROBLEM_CONTENT_TYPE },
    body: { type: base + type, title: error.message, status: error.httpStatus, code: error.code },
  }
}

export const DEFAULT_PROBLEM_TYPE_BASE = 'https://pg-idempotency.dev/problems/'

const TITLES: Record<ProblemType, string> = {
  [ProblemType.KEY_MISSING]: 'Idempotency key required',
  [ProblemType.KEY_INVALID]: 'Invalid idempotency key',
  [ProblemType.KEY_MISMATCH]: 'Idempotency key reused with a different request',
  [ProblemType.KEY_IN_PROGRESS]: 'A request with this idempotency key is in progress',
  [ProblemType.REQUEST_INVALID]: 'Request body is not JSON',
  [ProblemType.REQUEST_TOO_LARGE]: 'Request body too large',
  [ProblemType.SERVER_ERROR]: 'Idempotency store unavailable',
}

export function problem(
  base: string,
  type: ProblemType,
  status: number,
  detail: string,
  extra: { code?: string; retryAfterSeconds?: number } = {},
): HttpResponse {
  const headers: Record<string, string> = { 'content-type': PROBLEM_CONTENT_TYPE }
  if (extra.retryAfterSeconds !== undefined) headers['retry-after'] = String(extra.retryAfterSeconds)
  return {
    status,
    headers,
    body: { type: base + type, title: TITLES[type], status, detail, ...(extra.code ? { code: extra.code } : {}) },
  }
}

/** The problem response for an error the library raised; `mismatchStatus` is 422 or 409. */
export function problemFromError(base: string, error: IdempotencyError, mismatchStatus: number): HttpResponse {
  const extra = { code: error.code }
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
    case IdempotencyErrorCode.CUSTOMER_IDENTIFIER_INVALID:
    case IdempotencyErrorCode.CUSTOMER_IDENTIFIER_PERSONAL_DATA:
    case IdempotencyErrorCode.CUSTOMER_REFERENCE_INVALID:
    case IdempotencyErrorCode.CUSTOMER_NOT_FOUND:
    case IdempotencyErrorCode.CUSTOMER_DELETING:
      return customerProblem(base, error)
    default:
      return problem(base, ProblemType.SERVER_ERROR, 500, 'The request could not be made idempotent; nothing was stored. Retry later.', extra)
  }
}
