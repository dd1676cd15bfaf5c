import { inTransaction } from '../data/database.ts'
import { toDatabase, type DatabaseInput } from '../data/resolve-database.ts'
import { DEFAULT_SCHEMA } from '../store/schema-name.ts'
import { loadSqlFile, renderSql } from './sql-files.ts'

export interface GrantAccessOptions {
  /** The role the application connects as. It needs no DDL rights. */
  role: string
  schema?: string
}

/**
 * Grants `role` exactly what the library needs at run time, by running `sql/grants.sql` (which a
 * DBA can run with `psql -v schema=idempotency -v role=app -f sql/grants.sql` instead).
 * `db` is any data layer's database or a Kysely instance.
 */
export async function grantAccess(db: DatabaseInput, options: GrantAccessOptions): Promise<void> {
  const text = renderSql(await loadSqlFile('grants.sql'), { schema: options.schema ?? DEFAULT_SCHEMA, role: options.role })
  // No parameters: the file (several statements) goes as one simple query.
  await inTransaction(toDatabase(db), (session) => session.run({ text, values: [], script: true }))
}
