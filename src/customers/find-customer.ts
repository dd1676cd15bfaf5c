import { validate as isUuid } from 'uuid'
import { inSessionOrTransaction, type SessionOrDatabase } from '../data/session-or-database.ts'
import { CustomerDeletingError, CustomerNotFoundError, CustomerReferenceError } from '../errors.ts'
import { toCustomer, validateClientId, validateIdentifier, type Customer } from './customer.ts'
import { selectCustomer, type CustomerRowLock } from './customer-store.ts'

/** The request headers that name the customer a call is made for. Only one may be sent. */
export const CUSTOMER_ID_HEADER = 'x-customer-id'
export const CUSTOMER_IDENTIFIER_HEADER = 'x-customer-idempotent-identifier'

export interface FindCustomerInput {
  clientId: string
  /** The server's id (a UUID), or ... */
  customerId?: string | undefined
  /** ... the client's identifier. Exactly one of the two. */
  idempotentIdentifier?: string | undefined
  schema?: string
}

/** One of the two ways to name a customer, checked; the client is checked separately. */
export type CustomerName = { customerId: string } | { idempotentIdentifier: string }

/**
 * Checks that exactly one of id and identifier is given, and that it is well formed: `400`
 * (`CUSTOMER_REFERENCE_INVALID`, or an identifier breaking the character rules) otherwise.
 */
export function checkCustomerName(input: Pick<FindCustomerInput, 'customerId' | 'idempotentIdentifier'>): CustomerName {
  const hasId = input.customerId !== undefined
  const hasIdentifier = input.idempotentIdentifier !== undefined
  if (hasId === hasIdentifier) {
    throw new CustomerReferenceError(
      hasId
        ? `Name the customer by ${CUSTOMER_ID_HEADER} or by ${CUSTOMER_IDENTIFIER_HEADER}, not both.`
        : `Name the customer by ${CUSTOMER_ID_HEADER} or by ${CUSTOMER_IDENTIFIER_HEADER}.`,
    )
  }
  if (hasId) {
    if (typeof input.customerId !== 'string' || !isUuid(input.customerId)) throw new CustomerReferenceError(`${CUSTOMER_ID_HEADER} must be a UUID.`)
    return { customerId: input.customerId }
  }
  // Lookups apply the character rules only: a client that opted out of the personal-data check
  // must still find its customers.
  return { idempotentIdentifier: validateIdentifier(input.idempotentIdentifier, { allowPersonalData: true }) }
}

/**
 * Where a customer is looked up: the seam of the caller's transaction (`database.session(tx)`),
 * or a database, in which a short transaction of its own runs the lookup.
 */
/** Where a customer is looked up: in the caller's transaction (a session) or a short one of a database's. */
export type CustomerSource = SessionOrDatabase

/**
 * The client's customer named by id or by identifier, or undefined if there is none. A customer
 * being deleted is returned with `status: 'deleting'`. Any data layer; kysely users call
 * `findCustomer(dbOrTx, input)`.
 */
export async function findCustomerIn(source: CustomerSource, input: FindCustomerInput): Promise<Customer | undefined> {
  return find(source, input, 'none')
}

async function find(source: CustomerSource, input: FindCustomerInput, lock: CustomerRowLock): Promise<Customer | undefined> {
  const name = checkCustomerName(input)
  const clientId = validateClientId(input.clientId)
  return inSessionOrTransaction(source, async (session, joined) => {
    // A lock taken in a transaction of the lookup's own would end with it: only the caller's holds one.
    const row = await selectCustomer(session, input.schema, { clientId, ...name }, joined ? lock : 'none')
    return row && toCustomer(row)
  })
}

/**
 * The customer a request is made on behalf of, from `X-Customer-Id` or
 * `X-Customer-Idempotent-Identifier`: `400` for both or neither, `404` for none, `410` for a
 * customer being deleted. Any data layer; kysely users call `resolveCustomer(dbOrTx, input)`.
 *
 * In the caller's transaction (`source` a session), the customer row stays key-share locked until
 * the transaction ends: the deletion job's last step (which deletes the row) waits for it, and
 * then deletes whatever the transaction wrote for the customer too, its idempotency keys
 * included. A request that found the customer active can therefore not leave data behind a
 * finished deletion. With a database, the lookup's own short transaction locks nothing.
 *
 * @example
 * ```ts
 * const customer = await resolveCustomerIn(database.session(tx), { clientId, ...customerReferenceFromHeaders((name) => req.get(name)) })
 * ```
 */
export async function resolveCustomerIn(source: CustomerSource, input: FindCustomerInput): Promise<Customer> {
  const customer = await find(source, input, 'key share')
  if (!customer) throw new CustomerNotFoundError()
  if (customer.status === 'deleting') throw new CustomerDeletingError(customer.customerId, 410)
  return customer
}

/** Reads the two customer headers with the framework's own header lookup. */
export function customerReferenceFromHeaders(header: (name: string) => string | undefined): Pick<FindCustomerInput, 'customerId' | 'idempotentIdentifier'> {
  return { customerId: header(CUSTOMER_ID_HEADER), idempotentIdentifier: header(CUSTOMER_IDENTIFIER_HEADER) }
}
