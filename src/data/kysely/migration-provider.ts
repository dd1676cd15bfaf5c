// The library's sql/ files as a kysely MigrationProvider, for kysely's Migrator and kysely-ctl.
import type { Kysely, Transaction } from 'kysely'
import type { Migration, MigrationProvider } from 'kysely/migration'
import { applyMigration } from '../../migrations/apply-migration.ts'
import type { MigrateOptions } from '../../migrations/migrate.ts'
import { loadMigrations } from '../../migrations/sql-files.ts'
import { DEFAULT_SCHEMA } from '../../store/schema-name.ts'
import { kyselySession } from './session.ts'

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
            await runInTransaction(db, (tx) => applyMigration(kyselySession(tx), migration, schema))
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
