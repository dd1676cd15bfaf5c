import { CompiledQuery, sql, type Kysely, type Transaction } from 'kysely'
import type { Migration, MigrationProvider } from 'kysely/migration'
import { DEFAULT_SCHEMA, quoteLiteral, quoteSchema } from '../store/schema-name.ts'
import { loadMigrations, renderSql, type SqlMigration } from './sql-files.ts'

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
 * @example
 * ```ts
 * await migrate(db, { schema: 'idempotency' })
 * ```
 */
export async function migrate(db: Kysely<any>, options: MigrateOptions = {}): Promise<MigrateResult> {
  const schema = options.schema ?? DEFAULT_SCHEMA
  quoteSchema(schema)
  const applied: string[] = []
  let version = 0
  for (const migration of await loadMigrations()) {
    if (await db.transaction().execute((tx) => applyMigration(tx, migration, schema))) applied.push(migration.name)
    version = migration.version
  }
  return { applied, version }
}

/**
 * The same files for kysely's `Migrator` and kysely-ctl (see `kysely.config.ts`). Each `up`
 * checks the schema's own version table first, so files applied with psql or `migrate()` are
 * not applied twice; kysely's bookkeeping only mirrors it.
 */
export function idempotencyMigrationProvider(options: MigrateOptions = {}): MigrationProvider {
  const schema = options.schema ?? DEFAULT_SCHEMA
  return {
    async getMigrations() {
      const migrations: Record<string, Migration> = {}
      for (const migration of await loadMigrations()) {
        migrations[`pg-idempotency/${migration.name}`] = {
          up: async (db) => {
            await runInTransaction(db, (tx) => applyMigration(tx, migration, schema))
          },
        }
      }
      return migrations
    },
  }
}

// The Migrator hands `up` a transaction on PostgreSQL; a plain Kysely gets one of its own.
async function runInTransaction<T>(db: Kysely<any>, work: (tx: Transaction<any>) => Promise<T>): Promise<T> {
  return db.isTransaction ? work(db as Transaction<any>) : db.transaction().execute(work)
}

async function applyMigration(tx: Transaction<any>, migration: SqlMigration, schema: string): Promise<boolean> {
  // The same lock the file takes when psql runs it.
  await sql`select pg_advisory_xact_lock(hashtextextended(${'pg-idempotency:migrate:' + schema}, 0))`.execute(tx)
  if ((await appliedVersion(tx, schema)) >= migration.version) return false
  await tx.executeQuery(CompiledQuery.raw(renderSql(migration.text, { schema })))
  return true
}

async function appliedVersion(tx: Transaction<any>, schema: string): Promise<number> {
  const table = `${quoteSchema(schema)}.schema_migrations`
  const { rows } = await tx.executeQuery<{ exists: boolean }>(
    CompiledQuery.raw(`select to_regclass(${quoteLiteral(table)}) is not null as exists`),
  )
  if (!rows[0]?.exists) return 0
  const versions = await tx.executeQuery<{ version: number | null }>(CompiledQuery.raw(`select max(version) as version from ${table}`))
  return versions.rows[0]?.version ?? 0
}
