import type { SqlSession } from '../data/sql-session.ts'
import { CustomerDeletingError } from '../errors.ts'
import { toCustomer, validateClientId, validateContext, validateIdentifier, type Customer, type CustomerContext, type IdentifierRules } from './customer.ts'
import { insertCustomer, selectCustomer } from './customer-store.ts'

export interface CreateCustomerInput extends IdentifierRules {
  /** The API client that owns the customer. */
  clientId: string
  /** The client's own name for the customer: an opaque reference, never personal data. */
  idempotentIdentifier: string
  context?: CustomerContext
  /** Where the migrations put the tables. Default `'idempotency'`. */
  schema?: string
}

/**
 * Creates the client's customer with this identifier, or returns the one that exists:
 * `created` tells which (an API answers `201` or `200`). A repeat with another context returns
 * the existing customer unchanged. Any number of concurrent creates make exactly one customer:
 * the unique constraint on (client, identifier) decides, in the caller's transaction.
 *
 * Any data layer: `session` is the seam of the caller's transaction (`database.session(tx)`);
 * kysely users call `createCustomer(tx, input)`.
 *
 * @example
 * ```ts
 * const { customer, created } = await database.transaction((tx) =>
 *   createCustomerIn(database.session(tx), { clientId: 'client-a', idempotentIdentifier: 'user-123', context: { region: 'eu' } }))
 * ```
 */
export async function createCustomerIn(session: SqlSession, input: CreateCustomerInput): Promise<{ customer: Customer; created: boolean }> {
  const clientId = validateClientId(input.clientId)
  const identifier = validateIdentifier(input.idempotentIdentifier, input)
  const context = validateContext(input.context)
  // Under READ COMMITTED, a concurrent create of the same identifier makes this insert wait for
  // it; once it commits, the insert does nothing and the select below (a new snapshot) sees it.
  const inserted = await insertCustomer(session, input.schema, clientId, identifier, context)
  if (inserted) return { customer: toCustomer(inserted), created: true }
  // Key-share locked, like resolveCustomer's: the deletion cannot finish under this transaction.
  const existing = await selectCustomer(session, input.schema, { clientId, idempotentIdentifier: identifier }, 'key share')
  // Only a customer deleted between the two statements is missing here: a retry creates afresh.
  if (!existing) return createCustomerIn(session, input)
  if (existing.status === 'deleting') throw new CustomerDeletingError(existing.customerid, 409)
  return { customer: toCustomer(existing), created: false }
}
