import {
  IdempotencyErrorCode,
  IdempotencyKeyInProgressError,
  IdempotencySnapshotConflictError,
  IdempotencyStoreError,
  type IdempotencyError,
} from '../errors.ts'
import { SqlState, sqlStateOf } from './sql-state.ts'

/** Turns an error from one of the library's own statements into an {@link IdempotencyError}. */
export function translateDatabaseError(error: unknown, retryAfterSeconds: number): IdempotencyError {
  const sqlState = sqlStateOf(error)
  switch (sqlState) {
    case SqlState.LOCK_NOT_AVAILABLE:
      return new IdempotencyKeyInProgressError(
        'Timed out waiting for a concurrent request with the same idempotency key to finish.',
        retryAfterSeconds,
        { cause: error },
      )
    case SqlState.SERIALIZATION_FAILURE:
    case SqlState.DEADLOCK_DETECTED:
    case SqlState.UNIQUE_VIOLATION:
      return new IdempotencySnapshotConflictError({ cause: error })
    case SqlState.UNDEFINED_TABLE:
    case SqlState.UNDEFINED_FUNCTION:
    case SqlState.INVALID_SCHEMA_NAME:
      return new IdempotencyStoreError(
        IdempotencyErrorCode.NOT_MIGRATED,
        'The idempotency schema is missing or out of date: run migrate() (or the files in sql/) first.',
        sqlState,
        error,
      )
    case SqlState.IN_FAILED_SQL_TRANSACTION:
      return new IdempotencyStoreError(
        IdempotencyErrorCode.STORE_FAILED,
        'The transaction had already failed before the idempotency key was claimed; roll it back.',
        sqlState,
        error,
      )
    default:
      return new IdempotencyStoreError(
        IdempotencyErrorCode.STORE_FAILED,
        `The idempotency store failed: ${error instanceof Error ? error.message : String(error)}`,
        sqlState,
        error,
      )
  }
}
