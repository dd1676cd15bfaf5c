// postgres.js through the seam: the `tx` of `sql.begin(async (tx) => …)`, its statements run with
// `tx.unsafe(text, values)`. postgres.js is not imported: everything goes through the caller's
// objects.
import type { Sql, TransactionSql } from 'postgres'
import { IdempotencyUsageError } from '../../errors.ts'
import { defineDatabase, notATransaction, type IdempotencyDatabase } from '../database.ts'
import { isolationLevel } from '../isolation.ts'
import type { Row, SqlSession } from '../sql-session.ts'

// Strings and numbers are sent as text: postgres.js otherwise asks the server for each untyped
// parameter's type and serializes the value for it (JSON.stringify for `$5::json`, which would
// store the library's JSON text as a JSON string). Each placeholder's own cast does the rest.
const TEXT = 25
const HOW_TO = 'pass the `tx` of sql.begin(async (tx) => ...), not `sql` or a reserved connection (sql.reserve()).'

/**
 * The seam for a postgres.js transaction. `sql` itself and a reserved connection (both run each
 * statement in autocommit) are type errors and refused before any statement runs: only a
 * transaction's `sql` has `savepoint`.
 */
export function postgresSession<Tx extends TransactionSql<any>>(tx: Tx): SqlSession<Tx> {
  const candidate = tx as { savepoint?: unknown; unsafe?: unknown; begin?: unknown; release?: unknown } | null | undefined
  if (typeof candidate?.savepoint !== 'function' || typeof candidate.unsafe !== 'function' || candidate.begin !== undefined || candidate.release !== undefined) {
    throw notATransaction('postgres.js', HOW_TO)
  }
  return {
    transaction: tx,
    run: async (statement): Promise<Row[]> => {
      const values = statement.values.map((value) => (typeof value === 'string' || typeof value === 'number' ? tx.typed(value, TEXT) : value))
      // Named (hot) statements are prepared once per connection, unless the app turned preparing off.
      return [...(await tx.unsafe(statement.text, values as any[], { prepare: statement.name !== undefined }))] as Row[]
    },
  }
}

/** A postgres.js `sql` as the library's database: `sql.begin('isolation level …', fn)`. */
export function postgresDatabase<S extends Sql<any>>(sql: S): IdempotencyDatabase<TransactionSql<S extends Sql<infer T> ? T : {}>> {
  const candidate = sql as { begin?: unknown; savepoint?: unknown } | null | undefined
  if (typeof candidate?.begin !== 'function') {
    throw new IdempotencyUsageError('database(sql) from pg-idempotency/postgres takes the postgres.js `sql` (the one postgres(url) returned), not a transaction or a reserved connection.')
  }
  type Tx = TransactionSql<S extends Sql<infer T> ? T : {}>
  return defineDatabase<Tx>({
    layer: 'postgres.js',
    transaction: async (fn, { isolation }) =>
      (isolation === undefined ? sql.begin((tx) => fn(tx as Tx)) : sql.begin(`isolation level ${isolationLevel(isolation)}`, (tx) => fn(tx as Tx))) as never,
    session: postgresSession,
  })
}
