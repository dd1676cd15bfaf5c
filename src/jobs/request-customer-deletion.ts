import type { PgBoss } from 'pg-boss'
import { validate as isUuid } from 'uuid'
import { toCustomer, validateClientId, validateIdentifier } from '../customers/customer.ts'
import { customerTables, runStatement, selectCustomer, type CustomerReference } from '../customers/customer-store.ts'
import { inSessionOrTransaction, type SessionOrDatabase } from '../data/session-or-database.ts'
import { sql } from '../data/statement.ts'
import { CustomerNotFoundError, CustomerReferenceError } from '../errors.ts'
import { DEFAULT_SCHEMA } from '../store/schema-name.ts'
import { pgBossDb } from './pg-boss-db.ts'
import { CUSTOMER_DELETION_QUEUE, type CustomerDeletionJob } from './queues.ts'

export type CustomerDeletionRequest = { clientId: string; schema?: string } & ({ idempotentIdentifier: string } | { customerId: string })

export interface CustomerDeletionAccepted {
  customerId: string
  /** False when a deletion of this customer was already under way: nothing new was queued. */
  enqueued: boolean
}

/**
 * Marks the customer as deleting and enqueues its deletion job in the same transaction (pg-boss's
 * transactional send), so either both happen or neither. An API answers `202 Accepted`.
 * Repeating the request while the deletion runs is accepted and queues nothing new.
 *
 * `db` is any data layer's database (or a Kysely instance): the request runs in a transaction of
 * its own. Given the caller's transaction instead (its `SqlSession`, or a kysely `Transaction`),
 * it runs in that one and commits or rolls back with it.
 *
 * @example
 * ```ts
 * await requestCustomerDeletion(db, boss, { clientId, idempotentIdentifier: 'user-123' })
 * ```
 */
export async function requestCustomerDeletion(db: SessionOrDatabase, boss: PgBoss, request: CustomerDeletionRequest): Promise<CustomerDeletionAccepted> {
  const schema = request.schema ?? DEFAULT_SCHEMA
  const clientId = validateClientId(request.clientId)
  let reference: CustomerReference
  if ('customerId' in request) {
    if (!isUuid(request.customerId)) throw new CustomerReferenceError('The customer id must be a UUID.')
    reference = { clientId, customerId: request.customerId }
  } else {
    reference = { clientId, idempotentIdentifier: validateIdentifier(request.idempotentIdentifier, { allowPersonalData: true }) }
  }
  return inSessionOrTransaction(db, async (session) => {
    // The row lock makes concurrent requests queue here; all but the first find it deleting. It
    // does not wait for requests in flight that share-lock the row (foreign keys, emit).
    const row = await selectCustomer(session, schema, reference, 'no key update')
    if (!row) throw new CustomerNotFoundError()
    const customer = toCustomer(row)
    if (customer.status === 'deleting') return { customerId: customer.customerId, enqueued: false }
    const { customers, deletions } = customerTables(schema)
    await runStatement(session, sql`update ${customers} set status = 'deleting', deletion_requested_at = now() where customer_id = ${customer.customerId}::uuid`)
    await runStatement(
      session,
      // The record outlives the customer: it names the customer by the server's id only.
      sql`insert into ${deletions} (customer_id, client_id)
          values (${customer.customerId}::uuid, ${customer.clientId}::text)
          on conflict (customer_id) do nothing`,
    )
    // pg-boss keeps a job's data (and output) after it completes: the customer's id, nothing more.
    const job: CustomerDeletionJob = { customerId: customer.customerId, schema }
    await boss.send(CUSTOMER_DELETION_QUEUE, job, { db: pgBossDb(session), singletonKey: customer.customerId })
    return { customerId: customer.customerId, enqueued: true }
  })
}
