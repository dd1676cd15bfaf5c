import { inTransaction, type TransactionOptions } from './database.ts'
import { kyselySession } from './kysely/session.ts'
import { toDatabase, type DatabaseInput } from './resolve-database.ts'
import type { SqlSession } from './sql-session.ts'

/**
 * Where an operation that may join the caller's transaction runs: that transaction (its
 * {@link SqlSession}, or a kysely `Transaction`), or a new one of a database.
 */
export type SessionOrDatabase = SqlSession | DatabaseInput

// A session's transaction is an object for most layers, but a function for Knex (`trx` is callable)
// and postgres.js (`tx` is a tagged template).
function isSqlSession(value: unknown): value is SqlSession {
  const candidate = value as { run?: unknown; transaction?: unknown } | null
  if (typeof candidate?.run !== 'function' || candidate.transaction === null) return false
  return typeof candidate.transaction === 'object' || typeof candidate.transaction === 'function'
}

/**
 * Runs `fn` in the caller's transaction when `target` is one (`joined: true`), else in a new
 * transaction of `target`.
 */
export function inSessionOrTransaction<T>(
  target: SessionOrDatabase,
  fn: (session: SqlSession, joined: boolean) => Promise<T>,
  options?: TransactionOptions,
): Promise<T> {
  if (isSqlSession(target)) return fn(target, true)
  // A kysely Transaction passes for a Kysely instance by its type; its flag tells them apart.
  if ((target as { isTransaction?: unknown } | null)?.isTransaction === true) return fn(kyselySession(target as never), true)
  return inTransaction(toDatabase(target), (session) => fn(session, false), options)
}
