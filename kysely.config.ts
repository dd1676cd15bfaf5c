// kysely-ctl reads this file: `npx kysely migrate:latest` applies the same sql/ files as
// `migrate()` and psql. DATABASE_URL names the database; IDEMPOTENCY_SCHEMA the schema.
// kysely's own bookkeeping tables go into that schema too, so they never mix with the
// application's kysely migrations.
import { PostgresDialect } from 'kysely'
import { defineConfig } from 'kysely-ctl'
import pg from 'pg'
import { idempotencyMigrationProvider } from './src/index.ts'

const schema = process.env.IDEMPOTENCY_SCHEMA ?? 'idempotency'

export default defineConfig({
  dialect: new PostgresDialect({
    pool: new pg.Pool({ connectionString: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres', max: 1 }),
  }),
  migrations: {
    provider: idempotencyMigrationProvider({ schema }),
    migrationTableSchema: schema,
  },
})
