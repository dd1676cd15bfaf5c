import { inTransaction } from '../data/database.ts'
import { toDatabase, type DatabaseInput } from '../data/resolve-database.ts'
import { DEFAULT_SCHEMA, quoteSchema } from '../store/schema-name.ts'
import { applyMigration } from './apply-migration.ts'
import { loadMigrations } from './sql-files.ts'

export interface MigrateOptions {
  /** The schema to create and migrate. Default `'idempotency'`. */
  schema?: string
}

export interface MigrateResult {
  /** The names of the files this call applied, in order; empty when all were in place. */
  applied: string[]
  /** The schema version after the call. */
  version: number
}

/**
 * Applies the numbered files of `sql/` that the schema does not have yet, each in its own
 * transaction. Safe to run from many processes at once: a transaction-scoped advisory lock
 * makes the others wait, and they then find the version recorded and do nothing.
 *
 * `db` is any data layer's database (`database(…)` from its subpath) or a Kysely instance.
 *
 * @example
 * ```ts
 * await migrate(db, { schema: 'idempotency' })
 * ```
 */
export async function migrate(db: DatabaseInput, options: MigrateOptions = {}): Promise<MigrateResult> {
  const schema = options.schema ?? DEFAULT_SCHEMA
  quoteSchema(schema)
  const database = toDatabase(db)
  const applied: string[] = []
  let version = 0
  for (const migration of await loadMigrations()) {
    if (await inTransaction(database, (session) => applyMigration(session, migration, schema))) applied.push(migration.name)
    version = migration.version
  }
  return { applied, version }
}
