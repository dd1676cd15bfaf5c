import type { SqlSession } from '../data/sql-session.ts'
import { sql } from '../data/statement.ts'
import { quoteSchema } from '../store/schema-name.ts'
import { renderSql, type SqlMigration } from './sql-files.ts'

/**
 * Applies one numbered file in the session's transaction unless the schema already has it;
 * true when it did. Used by `migrate()` and by kysely's Migrator (`idempotencyMigrationProvider`).
 */
export async function applyMigration(session: SqlSession, migration: SqlMigration, schema: string): Promise<boolean> {
  // The same lock the file takes when psql runs it.
  await session.run(sql`select pg_advisory_xact_lock(hashtextextended(${'pg-idempotency:migrate:' + schema}::text, 0))::text as locked`.toStatement())
  if ((await appliedVersion(session, schema)) >= migration.version) return false
  // No parameters: the file (several statements) goes as one simple query.
  await session.run({ text: renderSql(migration.text, { schema }), values: [], script: true })
  return true
}

async function appliedVersion(session: SqlSession, schema: string): Promise<number> {
  const table = `${quoteSchema(schema)}.schema_migrations`
  const [found] = await session.run(sql`select (to_regclass(${table}::text) is not null)::text as exists`.toStatement())
  if (found?.exists !== 'true') return 0
  const [row] = await session.run({ text: `select max(version)::text as version from ${table}`, values: [] })
  return Number(row?.version ?? 0)
}
