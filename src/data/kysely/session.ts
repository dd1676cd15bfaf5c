// kysely through the seam. It imports kysely only when a statement first runs (kysely is an
// optional peer: `import 'pg-idempotency'` must load none of the data layers).
import type { CompiledQuery, Kysely, Transaction, TransactionBuilder } from 'kysely'
import { defineDatabase, notATransaction, type IdempotencyDatabase } from '../database.ts'
import type { Row, SqlSession } from '../sql-session.ts'
import type { Statement } from '../statement.ts'

let kysely: Promise<typeof import('kysely')> | undefined

/** The statement as kysely's compiled query, made by kysely's own `CompiledQuery.raw`. */
export async function compiledQueryOf(statement: Statement): Promise<CompiledQuery> {
  const { CompiledQuery } = await (kysely ??= import('kysely'))
  const query = CompiledQuery.raw(statement.text, statement.values as unknown[])
  statementOfQuery.set(query, statement)
  return query
}

// The library's statement a compiled query was made from, for a dialect that batches them.
const statementOfQuery = new WeakMap<object, Statement>()

/** The library statement `query` was made from, if any. */
export function statementOf(query: object): Statement | undefined {
  return statementOfQuery.get(query)
}

/** The seam for a kysely `Transaction`; anything else is refused before any statement runs. */
export function kyselySession<DB>(tx: Transaction<DB>): SqlSession<Transaction<DB>> {
  if ((tx as { isTransaction?: unknown } | null)?.isTransaction !== true || typeof (tx as { executeQuery?: unknown }).executeQuery !== 'function') {
    throw notATransaction('kysely', 'pass the `tx` of db.transaction().execute((tx) => ...), not the Kysely instance.')
  }
  return {
    transaction: tx,
    run: async (statement): Promise<Row[]> => (await tx.executeQuery(await compiledQueryOf(statement))).rows as Row[],
  }
}

/** A Kysely instance (or a transaction builder, for its settings) as the library's database. */
export function kyselyDatabase<DB>(db: Kysely<DB> | TransactionBuilder<DB>): IdempotencyDatabase<Transaction<DB>> {
  return defineDatabase<Transaction<DB>>({
    layer: 'kysely',
    transaction: (fn, { isolation }) => {
      const builder = 'transaction' in db && typeof db.transaction === 'function' ? db.transaction() : (db as TransactionBuilder<DB>)
      return (isolation === undefined ? builder : builder.setIsolationLevel(isolation)).execute(fn)
    },
    session: kyselySession,
  })
}
