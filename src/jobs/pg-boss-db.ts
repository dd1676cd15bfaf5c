import type { Db } from 'pg-boss'
import type { SqlSession } from '../data/sql-session.ts'
import type { StatementValue } from '../data/statement.ts'

/**
 * pg-boss's `db` option over the caller's transaction, so a job is sent (or not) with the
 * transaction's other writes. pg-boss's own values are text, numbers and JSON text.
 */
export function pgBossDb(session: SqlSession): Db {
  return {
    executeSql: async (text, values = []) => ({ rows: await session.run({ text, values: values as StatementValue[] }) }),
  }
}
