// findCustomer and resolveCustomer with kysely's types: a Kysely instance or one of its transactions.
import type { Kysely } from 'kysely'
import type { Customer } from '../../customers/customer.ts'
import { findCustomerIn, resolveCustomerIn, type FindCustomerInput } from '../../customers/find-customer.ts'

/**
 * The client's customer named by id or by identifier, or undefined if there is none. A customer
 * being deleted is returned with `status: 'deleting'`. `dbOrTx` is a Kysely instance or one of
 * its transactions.
 */
export async function findCustomer(dbOrTx: Kysely<any>, input: FindCustomerInput): Promise<Customer | undefined> {
  return findCustomerIn(dbOrTx, input)
}

/**
 * The customer a request is made on behalf of, from `X-Customer-Id` or
 * `X-Customer-Idempotent-Identifier`: `400` for both or neither, `404` for none, `410` for a
 * customer being deleted.
 *
 * Inside a transaction, the customer row stays key-share locked until the transaction ends: the
 * deletion job's last step (which deletes the row) waits for it, and then deletes whatever the
 * transaction wrote for the customer too, its idempotency keys included. A request that found
 * the customer active can therefore not leave data behind a finished deletion.
 *
 * @example
 * ```ts
 * const customer = await resolveCustomer(tx, { clientId, ...customerReferenceFromHeaders((name) => req.get(name)) })
 * ```
 */
export async function resolveCustomer(dbOrTx: Kysely<any>, input: FindCustomerInput): Promise<Customer> {
  return resolveCustomerIn(dbOrTx, input)
}
