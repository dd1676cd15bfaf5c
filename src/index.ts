export { withIdempotency, runTransaction, kyselyDatabase } from './data/kysely/index.ts'
export { withIdempotencyIn, type IdempotencyOutcome } from './with-idempotency.ts'
export { defineDatabase, type IdempotencyDatabase, type DatabaseParts, type IsolationLevel, type TransactionOptions } from './data/database.ts'
export type { SqlSession, Row } from './data/sql-session.ts'
export type { Statement, StatementValue } from './data/statement.ts'
export type { WithIdempotencyOptions, MismatchPolicy, MismatchHandler } from './data/kysely/index.ts'
export type { IdempotencyOptions } from './options.ts'
export { FinalFailure } from './final-failure.ts'
export {
  IdempotencyError,
  IdempotencyErrorCode,
  IdempotencyKeyInvalidError,
  IdempotencyKeyMismatchError,
  IdempotencyKeyInProgressError,
  IdempotencySnapshotConflictError,
  IdempotencyJsonError,
  IdempotencyRequestBodyError,
  IdempotencyUsageError,
  IdempotencyStoreError,
  CustomerIdentifierError,
  CustomerReferenceError,
  CustomerNotFoundError,
  CustomerDeletingError,
} from './errors.ts'
export { validateKey, MAX_KEY_LENGTH, MAX_SCOPE_LENGTH, DEFAULT_SCOPE, type IdempotencyKey, type IdempotencyKeyInput, type KeyFormat } from './key.ts'
export type { Duration } from './duration.ts'
export type { JsonValue, Jsonified } from './json.ts'
export { DEFAULT_SCHEMA } from './store/schema-name.ts'
export { optimizedDialect, type OptimizedDialectOptions } from './data/kysely/optimized-dialect.ts'
export { migrate, idempotencyMigrationProvider, type MigrateOptions, type MigrateResult } from './migrations/migrate.ts'
export { grantAccess, type GrantAccessOptions } from './migrations/grant-access.ts'
export { createCustomer, type CreateCustomerInput } from './customers/create-customer.ts'
export {
  findCustomer,
  resolveCustomer,
  customerReferenceFromHeaders,
  CUSTOMER_ID_HEADER,
  CUSTOMER_IDENTIFIER_HEADER,
  type FindCustomerInput,
} from './customers/find-customer.ts'
export { validateIdentifier, type Customer, type CustomerContext, type IdentifierRules } from './customers/customer.ts'
export { personalDataKind, type PersonalDataKind } from './customers/personal-data.ts'
export { deleteCustomerData, getCustomerDeletion, type CustomerDeletion, type DeleteCustomerDataOptions } from './customers/deletion/delete-customer-data.ts'
export type { RegisteredCustomerTable } from './customers/deletion/dependent-tables.ts'
export { sweepExpiredKeys, type SweepOptions } from './sweep-expired-keys.ts'
export { emit, type EmitOptions } from './outbox/emit.ts'
export { withInbox, type InboxMessage } from './outbox/inbox.ts'
