import { CompiledQuery, type Kysely } from 'kysely'
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
 */
export async function grantAccess(db: Kysely<any>, options: GrantAccessOptions): Promise<void> {
  const text = renderSql(await loadSqlFile('grants.sql'), { schema: options.schema ?? DEFAULT_SCHEMA, role: options.role })
  await db.transaction().execute((tx) => tx.executeQuery(CompiledQuery.raw(text)))
}
