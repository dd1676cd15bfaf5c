export { withIdempotency, type IdempotencyOutcome } from './with-idempotency.ts'
export type { WithIdempotencyOptions, MismatchPolicy, MismatchHandler } from './options.ts'
export { FinalFailure } from './final-failure.ts'
export {
  IdempotencyError,
  IdempotencyErrorCode,
  IdempotencyKeyInvalidError,
  IdempotencyKeyMismatchError,
  IdempotencyKeyInProgressError,
  IdempotencySnapshotConflictError,
  IdempotencyJsonError,
  IdempotencyUsageError,
  IdempotencyStoreError,
} from './errors.ts'
export { validateKey, MAX_KEY_LENGTH, MAX_SCOPE_LENGTH, DEFAULT_SCOPE, type IdempotencyKey, type IdempotencyKeyInput, type KeyFormat } from './key.ts'
export type { Duration } from './duration.ts'
export type { JsonValue, Jsonified } from './json.ts'
export { DEFAULT_SCHEMA } from './store/schema-name.ts'
export { migrate, idempotencyMigrationProvider, type MigrateOptions, type MigrateResult } from './migrations/migrate.ts'
export { grantAccess, type GrantAccessOptions } from './migrations/grant-access.ts'
