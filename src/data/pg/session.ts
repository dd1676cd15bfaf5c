// node-postgres through the seam: a client (from pool.connect(), or a Client) that the caller has
// put inside BEGIN. node-postgres is not imported: everything goes through the caller's objects.
import type { ClientBase, Pool, PoolClient, QueryConfig } from 'pg'
import { IdempotencyUsageError } from '../../errors.ts'
import { isConnectionLost } from '../../store/connection-lost.ts'
import { SqlState, sqlStateOf } from '../../store/sql-state.ts'
import { defineDatabase, notATransaction, type IdempotencyDatabase } from '../database.ts'
import { isolationLevel } from '../isolation.ts'
import type { Row, SqlSession } from '../sql-session.ts'
import type { Statement } from '../statement.ts'

// Fails with 25P01 outside a transaction block and does nothing inside one (every query that reads
// a catalog takes the same lock; nothing but a VACUUM FULL of pg_am waits for it).
const PROBE = 'lock table pg_catalog.pg_am in access share mode'
const HOW_TO = 'pass a client from pool.connect() after BEGIN (or let database(pool).transaction open it), not the pool or a client outside BEGIN.'

/**
 * The seam for a node-postgres client inside BEGIN. A Pool, or anything else that is not a
 * client, is refused at once; a client outside a transaction block is refused at its first
 * statement, before any of the library's statements runs (`IDEMPOTENCY_USAGE`). The client's own
 * transaction status (pg ≥ 8.1x reports it) makes that check free; where it does not say "in a
 * transaction", a `LOCK TABLE` that PostgreSQL refuses outside a transaction block decides.
 * The library's hot statements go as named queries: prepared once per connection.
 */
export function pgSession<C extends ClientBase>(client: C): SqlSession<C> {
  if (isPool(client) || !isClient(client)) throw notATransaction('node-postgres', HOW_TO)
  let inTransaction: Promise<void> | undefined = reportsTransaction(client) ? Promise.resolve() : undefined
  return {
    transaction: client,
    run: async (statement): Promise<Row[]> => {
      await (inTransaction ??= probe(client))
      return (await client.query(queryConfig(statement))).rows as Row[]
    },
  }
}

function queryConfig(statement: Statement): QueryConfig {
  const values = statement.values as unknown[]
  return statement.name === undefined ? { text: statement.text, values } : { name: statement.name, text: statement.text, values }
}

// 'T' in a transaction, 'E' in a failed one (the claim then gets the typed 25P02 error). 'I' may
// be out of date (a BEGIN sent but not yet answered), so it is checked, as is an older client
// that does not report its status.
function reportsTransaction(client: ClientBase): boolean {
  const status = (client as { getTransactionStatus?: () => unknown }).getTransactionStatus?.()
  return status === 'T' || status === 'E'
}

async function probe(client: ClientBase): Promise<void> {
  try {
    await client.query(PROBE)
  } catch (error) {
    if (sqlStateOf(error) === SqlState.NO_ACTIVE_SQL_TRANSACTION) throw notATransaction('node-postgres', `the client is not inside BEGIN: ${HOW_TO}`)
    throw error
  }
}

function isPool(value: unknown): value is Pool {
  const candidate = value as { connect?: unknown; totalCount?: unknown } | null | undefined
  return typeof candidate?.connect === 'function' && typeof candidate.totalCount === 'number'
}

function isClient(value: unknown): value is ClientBase {
  const candidate = value as { query?: unknown; escapeIdentifier?: unknown } | null | undefined
  return typeof candidate?.query === 'function' && typeof candidate.escapeIdentifier === 'function'
}

/**
 * A node-postgres Pool as the library's database: each transaction takes a client, runs
 * `BEGIN [ISOLATION LEVEL …]`, and commits or rolls back; a client whose connection broke is
 * destroyed (`release(error)`), never handed to the next transaction.
 */
export function pgDatabase(pool: Pool): IdempotencyDatabase<PoolClient> {
  if (!isPool(pool)) throw new IdempotencyUsageError('database(pool) from pg-idempotency/pg takes a node-postgres Pool (for a single client, use withIdempotency(client, …) inside your own BEGIN).')
  return defineDatabase<PoolClient>({
    layer: 'node-postgres',
    transaction: async (fn, { isolation }) => {
      let broken: Error | undefined
      // A checked-out client whose connection dies between queries emits 'error'; unheard, that
      // would end the process. The query that follows fails, and the client is destroyed.
      const onError = (error: Error) => {
        broken ??= error
      }
      // Heard from the moment the pool hands the client over, in the pool's own callback: a
      // promise's continuation runs only after the rest of the socket's chunk is parsed, and a
      // backend terminated just as it became ready sends its FATAL in that same chunk.
      const client = await new Promise<PoolClient>((resolve, reject) => {
        pool.connect((error, checkedOut) => {
          if (error || checkedOut === undefined) return reject(error)
          checkedOut.on('error', onError)
          resolve(checkedOut)
        })
      })
      try {
        await client.query(isolation === undefined ? 'begin' : `begin isolation level ${isolationLevel(isolation)}`)
        let result
        try {
          result = await fn(client)
        } catch (error) {
          await client.query('rollback').catch((rollbackError: Error) => {
            broken = rollbackError
          })
          throw error
        }
        await client.query('commit')
        return result
      } catch (error) {
        if (isConnectionLost(error)) broken ??= error as Error
        throw error
      } finally {
        // A client going back to the pool is heard by the pool from here on. One that is being
        // destroyed keeps this listener: its dying connection may still report (a FATAL 57P01
        // after the release), and an unheard 'error' would end the process.
        if (broken === undefined) client.off('error', onError)
        client.release(broken ?? false)
      }
    },
    session: pgSession,
  })
}
