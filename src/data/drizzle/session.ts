// Drizzle through the seam: a Drizzle transaction (`tx` of `db.transaction(async (tx) => …)`) on its
// node-postgres or postgres.js driver; statements built with Drizzle's public `sql` and run with
// `tx.execute`. drizzle-orm is imported only when a statement first runs (it is an optional peer).
// The library reads only text columns it cast itself, so Drizzle's own type parsers (timestamps
// as strings on node-postgres) never change what it sees.
import type { PgDatabase, PgTransaction } from 'drizzle-orm/pg-core'
import type { SQL } from 'drizzle-orm'
import { IdempotencyUsageError } from '../../errors.ts'
import { defineDatabase, notATransaction, type IdempotencyDatabase } from '../database.ts'
import { isolationLevel } from '../isolation.ts'
import { splitAtPlaceholders } from '../placeholders.ts'
import type { Row, SqlSession } from '../sql-session.ts'
import type { Statement } from '../statement.ts'

/** Any Drizzle PostgreSQL transaction, whatever its driver and schema. */
export type DrizzleTransaction = PgTransaction<any, any, any>
/** The transaction type of a Drizzle database's `transaction` callback. */
export type DrizzleTransactionOf<Db> = Db extends { transaction<T>(fn: (tx: infer Tx) => Promise<T>, ...rest: any[]): Promise<T> } ? Tx : never

const HOW_TO = 'pass the `tx` of db.transaction(async (tx) => ...), not the database.'
// Drizzle's own marker of its classes (`entityKind`, exported by drizzle-orm), by which its `is()`
// tells them apart across copies of the package.
const ENTITY_KIND = Symbol.for('drizzle:entityKind')

let drizzle: Promise<typeof import('drizzle-orm')> | undefined

/**
 * The seam for a Drizzle transaction. The database itself (each of its statements would commit on
 * its own) is a type error and refused before any statement runs.
 */
export function drizzleSession<Tx extends DrizzleTransaction>(tx: Tx): SqlSession<Tx> {
  if (!isDrizzleTransaction(tx)) throw notATransaction('drizzle', HOW_TO)
  return {
    transaction: tx,
    run: async (statement): Promise<Row[]> => {
      const query = await drizzleSql(statement)
      let result: unknown
      try {
        result = await tx.execute(query)
      } catch (error) {
        throw driverError(error)
      }
      // node-postgres gives a QueryResult, postgres.js the rows themselves.
      return (Array.isArray(result) ? [...result] : ((result as { rows?: Row[] }).rows ?? [])) as Row[]
    },
  }
}

/**
 * The statement as Drizzle SQL: its text as raw pieces, each `$n` a parameter. Made as Drizzle's
 * `sql` tag makes one, one flat list of pieces and parameters: the same query as joining an `SQL`
 * per piece, compiled in about 11 µs rather than 19.
 */
export async function drizzleSql(statement: Statement): Promise<SQL> {
  const { sql } = await (drizzle ??= import('drizzle-orm'))
  const { parts, positions } = splitAtPlaceholders(statement.text)
  const strings = Object.assign([...parts], { raw: parts }) as unknown as TemplateStringsArray
  return sql(strings, ...positions.map((position) => sql.param(statement.values[position])))
}

// Drizzle (0.44 and later) wraps a failed query in a DrizzleQueryError: the driver's error, with
// its SQLSTATE, is its cause, and is what the library turns into its typed errors.
function driverError(error: unknown): unknown {
  const wrapped = error as { query?: unknown; code?: unknown; cause?: unknown } | null
  return typeof wrapped?.query === 'string' && wrapped.code === undefined && wrapped.cause !== undefined ? wrapped.cause : error
}

function isDrizzleTransaction(value: unknown): boolean {
  if (typeof (value as { execute?: unknown } | null)?.execute !== 'function') return false
  for (let type = (value as object).constructor; typeof type === 'function'; type = Object.getPrototypeOf(type)) {
    if (Object.hasOwn(type, ENTITY_KIND) && (type as unknown as Record<symbol, unknown>)[ENTITY_KIND] === 'PgTransaction') return true
  }
  return false
}

/** A Drizzle database (node-postgres or postgres.js driver) as the library's database. */
export function drizzleDatabase<Db extends PgDatabase<any, any, any>>(db: Db): IdempotencyDatabase<DrizzleTransactionOf<Db>> {
  if (typeof (db as { transaction?: unknown } | null)?.transaction !== 'function' || isDrizzleTransaction(db)) {
    throw new IdempotencyUsageError('database(db) from pg-idempotency/drizzle takes the Drizzle database, not one of its transactions.')
  }
  type Tx = DrizzleTransactionOf<Db>
  return defineDatabase<Tx>({
    layer: 'drizzle',
    transaction: async (fn, { isolation }) => {
      let failure: unknown
      try {
        return await db.transaction(
          async (tx) => {
            try {
              return await fn(tx as Tx)
            } catch (error) {
              failure = error
              throw error
            }
          },
          isolation === undefined ? undefined : { isolationLevel: isolationLevel(isolation) },
        )
      } catch (error) {
        // fn's own error as it was thrown; BEGIN's, COMMIT's or ROLLBACK's (which Drizzle wraps)
        // as the driver's, with its SQLSTATE: a serialization failure at COMMIT is retried on that.
        throw error === failure ? error : driverError(error)
      }
    },
    session: (tx) => drizzleSession(tx as DrizzleTransaction) as SqlSession<Tx>,
    driverError,
  })
}
