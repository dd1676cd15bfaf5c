import type { Customer } from '../customers/customer.ts'
import { checkCustomerName, customerReferenceFromHeaders, resolveCustomerIn } from '../customers/find-customer.ts'
import { customerJustLocked } from '../customers/lock-customer.ts'
import type { SqlSession } from '../data/sql-session.ts'
import { CustomerNotFoundError } from '../errors.ts'
import { DEFAULT_SCHEMA } from '../store/schema-name.ts'
import type { HttpRequest } from './types.ts'

/**
 * The customer a request names by `X-Customer-Id` or `X-Customer-Idempotent-Identifier`, on a
 * route whose policy says `customer: true` (undefined on other routes). Resolved in the request's
 * own transaction, which then holds the customer row against its deletion until it ends. Throws
 * the customer errors (400, 404, 410); an anonymous caller has no customers (404).
 */
export async function customerOfRequest(
  session: SqlSession,
  policy: { customer: boolean; schema: string | undefined },
  request: HttpRequest,
  client: string | undefined,
): Promise<Customer | undefined> {
  if (!policy.customer) return undefined
  const reference = customerReferenceFromHeaders((name) => request.header(name))
  if (client === undefined) {
    checkCustomerName(reference)
    throw new CustomerNotFoundError()
  }
  const customer = await resolveCustomerIn(session, { clientId: client, ...reference, ...(policy.schema === undefined ? {} : { schema: policy.schema }) })
  // resolveCustomerIn key-share locked its row, and the claim comes next: withIdempotency need not lock it again.
  customerJustLocked(session.transaction, policy.schema ?? DEFAULT_SCHEMA, customer.customerId)
  return customer
}
