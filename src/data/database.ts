import { hasClaimedKey } from '../claim-context.ts'
import { IdempotencyError, IdempotencyUsageError } from '../errors.ts'
import { isConnectionLost } from '../store/connection-lost.ts'
import { translateDatabaseError } from '../store/database-errors.ts'
import { sqlStateOf } from '../store/sql-state.ts'
import type { SqlSession } from './sql-session.ts'

/** PostgreSQL's isolation levels, as the library names them. */
export type IsolationLevel = 'read uncommitted' | 'read committed' | 'repeatable read' | 'serializable'

export interface TransactionOptions {
  /** Default: the database's (READ COMMITTED unless configured otherwise). */
  isolation?: IsolationLevel
}

/** What a data layer adapter supplies to make an {@link IdempotencyDatabase}. */
export interface DatabaseParts<Tx extends object> {
  /** The layer's name, for messages: `'prisma'`, `'knex'`. */
  layer: string
  /** Opens a transaction, runs `fn` in it, commits when `fn` resolves and rolls back when it throws. */
  transaction<T>(fn: (tx: Tx) => Promise<T>, options: TransactionOptions): Promise<T>
  /**
   * The seam for `tx`. Refuses (`IDEMPOTENCY_USAGE`) anything that is not an open transaction,
   * before any statement runs: a claim on an autocommit connection would commit on its own.
   */
  session(tx: Tx): SqlSession<Tx>
  /**
   * The driver's error inside an error this layer wraps (Drizzle's DrizzleQueryError, Prisma's
   * P2010), with its SQLSTATE as `code`. Omitted: errors pass as they are. The library reads it
   * only to decide (an HTTP route retries a serialization failure of the handler's own write).
   */
  driverError?(error: unknown): unknown
}

const DATABASE = Symbol.for('pg-idempotency.database')

/**
 * A database as the library's HTTP adapters, customers, outbox, inbox and jobs use it: any data
 * layer, through its adapter (`database(prisma)` from `pg-idempotency/prisma`, say).
 */
export interface IdempotencyDatabase<Tx extends object = object> {
  readonly [DATABASE]: true
  readonly layer: string
  /**
   * Runs `fn` in a new transaction. A lost connection keeps the library's typed errors: when `fn`
   * failed with an {@link IdempotencyError}, that error is thrown (kysely and others would throw
   * their ROLLBACK's error instead); when `fn` claimed a key and the connection was lost at
   * COMMIT, a retryable `IDEMPOTENCY_STORE_FAILED` is thrown (it may or may not have committed:
   * the same key tells on retry).
   */
  transaction<T>(fn: (tx: Tx) => Promise<T>, options?: TransactionOptions): Promise<T>
  session(tx: Tx): SqlSession<Tx>
  /**
   * The SQLSTATE of an error of this layer's (a handler's own write that failed, say), looking
   * inside the layer's own wrapping; undefined when it carries none.
   */
  sqlStateOf(error: unknown): string | undefined
}

/** Makes a data layer's parts into a {@link IdempotencyDatabase}. */
export function defineDatabase<Tx extends object>(parts: DatabaseParts<Tx>): IdempotencyDatabase<Tx> {
  return {
    [DATABASE]: true,
    layer: parts.layer,
    transaction: (fn, options = {}) => keepTypedErrors((guarded) => parts.transaction(guarded, options), fn),
    session: (tx) => parts.session(tx),
    sqlStateOf: (error) => sqlStateOf(parts.driverError === undefined ? error : parts.driverError(error)),
  }
}

export function isIdempotencyDatabase(value: unknown): value is IdempotencyDatabase {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[DATABASE] === true
}

/** Opens a transaction on `database` and hands `fn` its seam. */
export function inTransaction<Tx extends object, T>(database: IdempotencyDatabase<Tx>, fn: (session: SqlSession<Tx>) => Promise<T>, options?: TransactionOptions): Promise<T> {
  return database.transaction((tx) => fn(database.session(tx)), options)
}

/**
 * Runs `open` (which opens a transaction and runs its callback in it) with `fn` as the callback,
 * keeping the library's typed error when the connection is lost (see
 * {@link IdempotencyDatabase.transaction}).
 */
export async function keepTypedErrors<Tx extends object, T>(open: (fn: (tx: Tx) => Promise<T>) => Promise<T>, fn: (tx: Tx) => Promise<T>): Promise<T> {
  let failure: unknown
  let claimed = false
  try {
    return await open(async (tx) => {
      try {
        return await fn(tx)
      } catch (error) {
        failure = error
        throw error
      } finally {
        claimed = hasClaimedKey(tx)
      }
    })
  } catch (error) {
    if (error === failure) throw error
    if (failure instanceof IdempotencyError) throw failure
    if (failure === undefined && claimed && isConnectionLost(error)) throw translateDatabaseError(error, 1)
    throw error
  }
}

/** The usage error a layer throws for something that is not an open transaction. */
export function notATransaction(layer: string, howTo: string): IdempotencyUsageError {
  return new IdempotencyUsageError(`pg-idempotency must run inside a transaction (${layer}): ${howTo}`)
}
