import { sql, type Kysely, type Transaction } from 'kysely'
import { translateDatabaseError } from '../store/database-errors.ts'
import { DEFAULT_SCHEMA } from '../store/schema-name.ts'
import type { CustomerContext, CustomerRow } from './customer.ts'

/** Which customer: by the server's id or by the client's identifier, always within one client. */
export type CustomerReference = { clientId: string; customerId: string } | { clientId: string; idempotentIdentifier: string }

/** The SQL that reads and writes the customers table of one schema. */
export function customerTables(schema = DEFAULT_SCHEMA) {
  return {
    customers: sql.id(schema, 'customers'),
    deletions: sql.id(schema, 'customer_deletions'),
    keys: sql.id(schema, 'idempotency_keys'),
  }
}

export async function insertCustomer(
  tx: Transaction<any>,
  schema: string | undefined,
  clientId: string,
  identifier: string,
  context: CustomerContext,
): Promise<CustomerRow | undefined> {
  const { customers } = customerTables(schema)
  const { rows } = await run(
    sql<CustomerRow>`
      insert into ${customers} (client_id, idempotent_identifier, customer_type, region, locale)
      values (${clientId}, ${identifier}, ${context.type ?? null}, ${context.region ?? null}, ${context.locale ?? null})
      on conflict (client_id, idempotent_identifier) do nothing
      returning *`.execute(tx),
  )
  return rows[0]
}

/**
 * How a select locks the customer row until its transaction ends: `'key share'` keeps the row
 * from being deleted (the deletion's last step waits), `'no key update'` also queues other
 * deletion requests.
 */
export type CustomerRowLock = 'none' | 'key share' | 'no key update'

const LOCK_CLAUSES = { none: sql``, 'key share': sql` for key share`, 'no key update': sql` for no key update` }

export async function selectCustomer(db: Kysely<any>, schema: string | undefined, reference: CustomerReference, lock: CustomerRowLock = 'none'): Promise<CustomerRow | undefined> {
  const { customers } = customerTables(schema)
  const match =
    'customerId' in reference
      ? sql`customer_id = ${reference.customerId}::uuid`
      : sql`idempotent_identifier = ${reference.idempotentIdentifier}`
  const { rows } = await run(
    sql<CustomerRow>`select * from ${customers} where client_id = ${reference.clientId} and ${match}${LOCK_CLAUSES[lock]}`.execute(db),
  )
  return rows[0]
}

/** The library's statements raise typed errors, never raw driver errors. */
export async function run<T>(query: Promise<T>): Promise<T> {
  try {
    return await query
  } catch (error) {
    throw translateDatabaseError(error, 1)
  }
}
