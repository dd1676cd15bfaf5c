import {
  IdempotencyError,
  IdempotencyErrorCode,
  IdempotencyKeyInProgressError,
  IdempotencySnapshotConflictError,
  IdempotencyStoreError,
} from '../errors.ts'
import { isConnectionLost } from './connection-lost.ts'
import { SqlState, sqlStateOf } from './sql-state.ts'

/**
 * Turns an error from the claim into an {@link IdempotencyError}. Only there does a timeout mean
 * a concurrent twin: the claim's wait for the key's lock is what timed out.
 */
export function translateClaimError(error: unknown, retryAfterSeconds: number): IdempotencyError {
  const sqlState = sqlStateOf(error)
  // lock_timeout (waitTimeout) or the caller's statement_timeout ran out while the claim waited.
  if (!(error instanceof IdempotencyError) && (sqlState === SqlState.LOCK_NOT_AVAILABLE || sqlState === SqlState.QUERY_CANCELED)) {
    return new IdempotencyKeyInProgressError(
      'Timed out waiting for the idempotency key: a concurrent request with the same key has not finished.',
      retryAfterSeconds,
      { cause: error },
    )
  }
  return translateDatabaseError(error, retryAfterSeconds)
}

/** Turns an error from one of the library's own statements into an {@link IdempotencyError}. */
export function translateDatabaseError(error: unknown, retryAfterSeconds: number): IdempotencyError {
  // Already typed: a batching data layer reports a held store's failure on a later statement.
  if (error instanceof IdempotencyError) return error
  if (isConnectionLost(error)) {
    return new IdempotencyStoreError(
      IdempotencyErrorCode.STORE_FAILED,
      'The connection to the database was lost; the transaction did not commit (or, at COMMIT, may have). Retry with the same key: it replays if it did.',
      sqlStateOf(error),
      error,
      true,
    )
  }
  const sqlState = sqlStateOf(error)
  switch (sqlState) {
    // Outside the claim (the store, a customer's statement) a timeout waited on something else
    // than a twin: a row lock, a slow server. Sending the request again may succeed.
    case SqlState.LOCK_NOT_AVAILABLE:
    case SqlState.QUERY_CANCELED:
      return new IdempotencyStoreError(
        IdempotencyErrorCode.STORE_FAILED,
        'A statement or lock timeout ran out during one of the idempotency store\'s statements; nothing was stored. The request can be retried.',
        sqlState,
        error,
        true,
      )
    case SqlState.SERIALIZATION_FAILURE:
    case SqlState.DEADLOCK_DETECTED:
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
        'The transaction had already failed (an earlier statement, perhaps one fn caught, raised an error); roll it back.',
        sqlState,
        error,
      )
    // The key row exists although this transaction holds the key's lock: something wrote the
    // table without the claim (or a nested call). Retrying would fail the same way.
    case SqlState.UNIQUE_VIOLATION:
      return new IdempotencyStoreError(
        IdempotencyErrorCode.STORE_FAILED,
        'The idempotency key was stored by a statement that bypassed the claim; the key table must only be written by the library.',
        sqlState,
        error,
      )
    // The server forgot a prepared statement the connection had (DISCARD ALL, DEALLOCATE, a
    // pooler): optimizedDialect has the connection parse it again on the next attempt.
    case SqlState.INVALID_SQL_STATEMENT_NAME:
      return new IdempotencyStoreError(
        IdempotencyErrorCode.STORE_FAILED,
        'The server no longer knew one of the library\'s prepared statements on this connection; the transaction can be retried.',
        sqlState,
        error,
        true,
      )
    // A migration replaced the claim function with other result columns while this connection
    // held it prepared ("cached plan must not change result type"); optimizedDialect has the
    // connection parse it again on the next attempt.
    case SqlState.FEATURE_NOT_SUPPORTED:
      return new IdempotencyStoreError(
        IdempotencyErrorCode.STORE_FAILED,
        `One of the library's prepared statements no longer matches the schema on this connection (${error instanceof Error ? error.message : String(error)}); the transaction can be retried.`,
        sqlState,
        error,
        true,
      )
    // The stored-result statement that may travel with COMMIT checks on the server that its row
    // was written (see key-store.ts): a trigger or rule on the key table discarded it.
    case SqlState.DIVISION_BY_ZERO:
      return new IdempotencyStoreError(
        IdempotencyErrorCode.STORE_FAILED,
        'The idempotency key row was not written: a trigger or rule on the key table discarded it. The key table must only be written by the library.',
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
