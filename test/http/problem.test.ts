import { describe, expect, it } from 'vitest'
import {
  CustomerDeletingError,
  CustomerIdentifierError,
  CustomerNotFoundError,
  CustomerReferenceError,
  IdempotencyError,
  IdempotencyErrorCode,
  IdempotencyJsonError,
  IdempotencyKeyInProgressError,
  IdempotencyKeyInvalidError,
  IdempotencyKeyMismatchError,
  IdempotencySnapshotConflictError,
  IdempotencyRequestBodyError,
  IdempotencyStoreError,
  IdempotencyUsageError,
} from '../../src/index.ts'
import { DEFAULT_PROBLEM_TYPE_BASE, problemFromError } from '../../src/http/index.ts'

// One error of every code (and both kinds of store failure): its problem's status, type and
// `retryable` must tell a client the same thing as the error itself.
const errors: IdempotencyError[] = [
  new IdempotencyKeyInvalidError('bad key'),
  new IdempotencyJsonError(IdempotencyErrorCode.REQUEST_INVALID, '$', 'NUL'),
  new IdempotencyKeyMismatchError(new Date()),
  new IdempotencyKeyInProgressError('busy', 2),
  new IdempotencySnapshotConflictError(),
  new IdempotencyJsonError(IdempotencyErrorCode.RESULT_INVALID, '$.note', 'a string has a NUL character'),
  new IdempotencyJsonError(IdempotencyErrorCode.EVENT_INVALID, '$', 'NUL'),
  new IdempotencyUsageError('no transaction'),
  new IdempotencyRequestBodyError(IdempotencyErrorCode.REQUEST_TOO_LARGE, 'too large'),
  new IdempotencyRequestBodyError(IdempotencyErrorCode.REQUEST_INVALID, 'not UTF-8'),
  new IdempotencyStoreError(IdempotencyErrorCode.NOT_MIGRATED, 'run migrate()', '42P01', new Error('relation does not exist')),
  new IdempotencyStoreError(IdempotencyErrorCode.STORE_FAILED, 'unique violation', '23505', new Error('duplicate key value violates unique constraint')),
  new IdempotencyStoreError(IdempotencyErrorCode.STORE_FAILED, 'connection lost', '57P01', new Error('terminating connection due to administrator command'), true),
  new CustomerIdentifierError('too long'),
  new CustomerIdentifierError('an e-mail address', 'email'),
  new CustomerReferenceError('both headers'),
  new CustomerNotFoundError(),
  new CustomerDeletingError('0f8fad5b-d9cb-469f-a165-70867728950e'),
  new CustomerDeletingError('0f8fad5b-d9cb-469f-a165-70867728950e', 409),
]

describe('problem details of the library errors', () => {
  it('covers every error code', () => {
    expect(new Set(errors.map((e) => e.code))).toEqual(new Set(Object.values(IdempotencyErrorCode)))
  })

  for (const error of errors) {
    it(`${error.code} (${error.retryable ? 'retryable' : 'final'}, ${error.httpStatus}): status, type and retryable agree`, () => {
      const { status, headers, body } = problemFromError(DEFAULT_PROBLEM_TYPE_BASE, error, 422)
      const problem = body as { type: string; status: number; title: string; detail?: string; code: string; retryable: boolean }
      expect(headers['content-type']).toBe('application/problem+json')
      expect(problem).toMatchObject({ status, code: error.code, retryable: error.retryable })
      expect(status).toBe(error.httpStatus)
      // Retry means a 409 or a 5xx with Retry-After; a refusal is a 4xx; a 5xx that will not
      // heal says so in its type, never "unavailable, retry later".
      if (error.retryable) {
        expect([409, 503]).toContain(status)
        expect(headers['retry-after']).toBeDefined()
      } else {
        expect(status === 409 && problem.type.endsWith('in-progress')).toBe(false)
        expect(problem.type).not.toMatch(/server-error$/)
        expect(`${problem.title} ${problem.detail ?? ''}`).not.toMatch(/retry later|unavailable/i)
      }
      // The driver's own words never reach a client.
      expect(JSON.stringify(body)).not.toMatch(/relation does not exist|duplicate key|administrator command|42P01|23505|57P01/)
    })
  }
})
