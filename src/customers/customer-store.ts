import type { SqlSession } from '../data/sql-session.ts'
import { sql, SqlFragment } from '../data/statement.ts'
import { epochMillisSql } from '../store/database-time.ts'
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

// Every column as text, decoded by toCustomer: a layer's own type parsers never change what is read,
// and named by one lower-case word: its column-name transforms never rename it.
const CUSTOMER_COLUMNS = new SqlFragment(
  [
    'customer_id::text as customerid, client_id::text as clientid, idempotent_identifier::text as identifier, ' +
      'customer_type::text as type, region::text as region, locale::text as locale, status::text as status, ' +
      `${epochMillisSql('created_at')} as created`,
  ],
  [],
)

export async function insertCustomer(
  session: SqlSession,
  schema: string | undefined,
  clientId: string,
  identifier: string,
  context: CustomerContext,
): Promise<CustomerRow | undefined> {
  const { customers } = customerTables(schema)
  const rows = await runStatement(
    session,
    sql`
      insert into ${customers} (client_id, idempotent_identifier, customer_type, region, locale)
      values (${clientId}::text, ${identifier}::text, ${context.type ?? null}::text, ${context.region ?? null}::text, ${context.locale ?? null}::text)
      on conflict (client_id, idempotent_identifier) do nothing
      returning ${CUSTOMER_COLUMNS}`,
  )
  return rows[0] as CustomerRow | undefined
}

/**
 * How a select locks the customer row until its transaction ends: `'key share'` keeps the row
 * from being deleted (the deletion's last step waits), `'no key update'` also queues other
 * deletion requests.
 */
export type CustomerRowLock = 'none' | 'key share' | 'no key update'

const LOCK_CLAUSES = { none: sql``, 'key share': sql` for key share`, 'no key update': sql` for no key update` }

export async function selectCustomer(
  session: SqlSession,
  schema: string | undefined,
  reference: CustomerReference,
  lock: CustomerRowLock = 'none',
): Promise<CustomerRow | undefined> {
  const { customers } = customerTables(schema)
  const match =
    'customerId' in reference
      ? sql`customer_id = ${reference.customerId}::uuid`
      : sql`idempotent_identifier = ${reference.idempotentIdentifier}::text`
  const rows = await runStatement(
    session,
    sql`select ${CUSTOMER_COLUMNS} from ${customers} where client_id = ${reference.clientId}::text and ${match}${LOCK_CLAUSES[lock]}`,
  )
  return rows[0] as CustomerRow | undefined
}

/** Runs one of the library's statements: it raises typed errors, never raw driver errors. */
export async function runStatement(session: SqlSession, fragment: SqlFragment): Promise<Record<string, unknown>[]> {
  try {
    return await session.run(fragment.toStatement())
  } catch (error) {
    throw translateDatabaseError(error, 1)
  }
}
