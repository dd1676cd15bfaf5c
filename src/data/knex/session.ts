// Knex through the seam: a Knex transaction (`trx`), its statements run with `trx.raw`. Knex is
// not imported: everything goes through the caller's objects.
import type { Knex } from 'knex'
import { IdempotencyUsageError } from '../../errors.ts'
import { defineDatabase, notATransaction, type IdempotencyDatabase } from '../database.ts'
import { isolationLevel } from '../isolation.ts'
import { splitAtPlaceholders } from '../placeholders.ts'
import type { Row, SqlSession } from '../sql-session.ts'
import type { Statement, StatementValue } from '../statement.ts'

const HOW_TO = 'pass the `trx` of knex.transaction(async (trx) => ...), not the Knex instance or a finished transaction.'

/**
 * The seam for a Knex transaction. The Knex instance itself (`isTransaction` is not `true`), or a
 * transaction that has already committed or rolled back, is refused before any statement runs.
 */
export function knexSession<Trx extends Knex.Transaction>(trx: Trx): SqlSession<Trx> {
  const candidate = trx as Partial<Knex.Transaction> | null | undefined
  if (candidate?.isTransaction !== true || typeof candidate.raw !== 'function' || candidate.isCompleted?.() === true) {
    throw notATransaction('knex', HOW_TO)
  }
  const dialect = (candidate.client as { dialect?: unknown } | undefined)?.dialect
  if (dialect !== undefined && dialect !== 'postgresql') throw new IdempotencyUsageError(`pg-idempotency runs on PostgreSQL; this Knex instance's dialect is ${String(dialect)}.`)
  return {
    transaction: trx,
    run: async (statement): Promise<Row[]> => {
      const { text, bindings } = questionMarks(statement)
      const result = (await trx.raw(text, bindings as Knex.RawBinding[])) as { rows?: Row[] }
      return result.rows ?? []
    },
  }
}

/**
 * The statement in knex.raw's positional form: each `$n` a `?` (its value repeated where `$n`
 * is), each `?` of the SQL itself escaped as `\?`, as Knex documents.
 */
export function questionMarks(statement: Statement): { text: string; bindings: StatementValue[] } {
  const { parts, positions } = splitAtPlaceholders(statement.text)
  return {
    text: parts.map((part) => part.replaceAll('?', '\\?')).join('?'),
    bindings: positions.map((position) => statement.values[position]!),
  }
}

/** A Knex instance (on PostgreSQL) as the library's database: `knex.transaction(fn, { isolationLevel })`. */
export function knexDatabase(knex: Knex): IdempotencyDatabase<Knex.Transaction> {
  const candidate = knex as Partial<Knex> | null | undefined
  if (typeof candidate?.transaction !== 'function' || candidate.isTransaction === true) {
    throw new IdempotencyUsageError('database(knex) from pg-idempotency/knex takes the Knex instance, not one of its transactions.')
  }
  return defineDatabase<Knex.Transaction>({
    layer: 'knex',
    // Knex calls back even when its BEGIN failed (a lost connection): the trx is then already
    // completed and knex.transaction rejects with BEGIN's error. fn does not run on such a trx (its
    // session would refuse it as not a transaction, IDEMPOTENCY_USAGE, hiding the lost connection).
    transaction: (fn, { isolation }) =>
      knex.transaction((trx) => (trx.isCompleted() ? (trx.executionPromise as Promise<never>) : fn(trx)), isolation === undefined ? {} : { isolationLevel: isolationLevel(isolation) }),
    session: knexSession,
  })
}
