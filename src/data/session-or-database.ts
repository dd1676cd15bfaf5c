import type { Transaction } from 'kysely'
import { inTransaction, type TransactionOptions } from './database.ts'
import { kyselySession } from './kysely/session.ts'
import { toDatabase, type DatabaseInput } from './resolve-database.ts'
import type { SqlSession } from './sql-session.ts'

/**
 * Where an operation that may join the caller's transaction runs: that transaction (its
 * {@link SqlSession}, or a kysely `Transaction`), or a new one of a database.
 */
export type SessionOrDatabase = DatabaseInput | SqlSession | Transaction<any>

function isSqlSession(value: unknown): value is SqlSession {
  const candidate = value as { run?: unknown; transaction?: unknown } | null
  return typeof candidate?.run === 'function' && typeof candidate.transaction === 'object' && candidate.transaction !== null
}

/** Runs `fn` in the caller's transaction when `target` is one, else in a new transaction of `target`. */
export function inSessionOrTransaction<T>(target: SessionOrDatabase, fn: (session: SqlSession) => Promise<T>, options?: TransactionOptions): Promise<T> {
  if (isSqlSession(target)) return fn(target)
  if ((target as { isTransaction?: unknown } | null)?.isTransaction === true) return fn(kyselySession(target as Transaction<any>))
  return inTransaction(toDatabase(target as DatabaseInput), fn, options)
}
