// What every data layer's entry point exports alike: errors, key rules, the seam for writing an
// adapter, the operations that take a database (any layer's, or a Kysely instance), and the
// session-level forms of the transaction functions. Each entry point (the root for kysely,
// `pg-idempotency/prisma`, …) re-exports it beside its own natively typed functions. It names no
// data layer's types, so a Prisma user needs no kysely installed even to type-check.
export { withIdempotencyIn, type IdempotencyOutcome } from './with-idempotency.ts'
export { defineDatabase, inTransaction, type IdempotencyDatabase, type DatabaseParts, type IsolationLevel, type TransactionOptions } from './data/database.ts'
export type { SessionOrDatabase } from './data/session-or-database.ts'
export type { SqlSession, Row } from './data/sql-session.ts'
export type { DatabaseInput, TransactionOf } from './data/resolve-database.ts'
export type { Statement, StatementValue } from './data/statement.ts'
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
export { migrate, type MigrateOptions, type MigrateResult } from './migrations/migrate.ts'
export { grantAccess, type GrantAccessOptions } from './migrations/grant-access.ts'
export { createCustomerIn, type CreateCustomerInput } from './customers/create-customer.ts'
export {
  findCustomerIn,
  resolveCustomerIn,
  customerReferenceFromHeaders,
  CUSTOMER_ID_HEADER,
  CUSTOMER_IDENTIFIER_HEADER,
  type FindCustomerInput,
  type CustomerSource,
} from './customers/find-customer.ts'
export { validateIdentifier, type Customer, type CustomerContext, type IdentifierRules } from './customers/customer.ts'
export { personalDataKind, type PersonalDataKind } from './customers/personal-data.ts'
export { deleteCustomerData, getCustomerDeletion, type CustomerDeletion, type DeleteCustomerDataOptions } from './customers/deletion/delete-customer-data.ts'
export type { RegisteredCustomerTable } from './customers/deletion/dependent-tables.ts'
export { sweepExpiredKeys, type SweepOptions } from './sweep-expired-keys.ts'
export { emitIn, type EmitOptions } from './outbox/emit.ts'
export { withInboxIn, type InboxMessage, type InboxOutcome } from './outbox/inbox.ts'
