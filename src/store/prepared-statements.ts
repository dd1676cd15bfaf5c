// Named prepared statements for the library's hot statements, on node-postgres pools that opt in.
//
// Sent unnamed (as kysely sends every query), each claim and each stored result is parsed,
// analysed and planned again by the server: measured, that is about 60 us of database CPU per
// statement, a third of what a first call adds (see the README's benchmarks). A named statement is
// parsed once per connection and then only bound and executed.
//
// kysely's pg driver cannot name a statement, so this works one level down: the pool's clients
// send the texts registered here with a name. Only statements without a plan choice are
// registered (a function call, an INSERT ... VALUES): a cached generic plan cannot turn into a
// sequential scan as the key table grows.

import { createHash } from 'node:crypto'
import { IdempotencyUsageError } from '../errors.ts'
import { SqlState, sqlStateOf } from './sql-state.ts'

/** The part of a node-postgres client this needs. */
interface QueryingClient {
  query(...args: unknown[]): unknown
}

/** node-postgres's record of the statements a connection has parsed (internal, hence optional). */
const parsedStatements = (client: QueryingClient) =>
  (client as { connection?: { parsedStatements?: Record<string, string> } }).connection?.parsedStatements

/** The part of a node-postgres `Pool` this needs. */
export interface PoolWithConnectEvent {
  on(event: 'connect', listener: (client: QueryingClient) => void): unknown
  totalCount?: number
}

// Statement text -> name. The name comes from the text, so two copies of the library in one
// process (or another schema's statements) never give one name to two texts.
const names = new Map<string, string>()
const NAME_PREFIX = 'pg_idempotency_'

/** Registers `sql` for {@link usePreparedStatements} pools, under a name made from `label`. */
export function preparedStatement(label: string, sql: string): string {
  if (!names.has(sql)) names.set(sql, `${NAME_PREFIX}${label}_${createHash('sha256').update(sql).digest('hex').slice(0, 16)}`)
  return sql
}

const patched = new WeakSet<QueryingClient>()

/**
 * Makes a node-postgres `Pool` send pg-idempotency's claim and stored-result statements as named
 * prepared statements: each connection parses them once. Other queries are untouched. Call it
 * right after creating the pool, before its first connection; it returns the pool.
 *
 * Leave it off behind PgBouncer in transaction pooling mode unless PgBouncer is 1.21 or later
 * with `max_prepared_statements` set, and on connections where something runs `DISCARD ALL` or
 * `DEALLOCATE ALL`: both make the server forget statements the client believes are prepared.
 *
 * @example
 * ```ts
 * const pool = usePreparedStatements(new pg.Pool({ connectionString }))
 * const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) })
 * ```
 */
export function usePreparedStatements<P extends PoolWithConnectEvent>(pool: P): P {
  if ((pool.totalCount ?? 0) > 0) {
    throw new IdempotencyUsageError('usePreparedStatements must be called before the pool opens its first connection; the open ones would stay unprepared.')
  }
  pool.on('connect', (client) => {
    if (patched.has(client)) return
    patched.add(client)
    const query = client.query
    client.query = function (this: QueryingClient, ...args: unknown[]) {
      const [text] = args
      const name = typeof text === 'string' ? names.get(text) : undefined
      if (name === undefined) return query.apply(this, args)
      // node-postgres takes { text, name } in place of the text, and the values after it.
      args[0] = { text, name }
      const result = query.apply(this, args) as PromiseLike<unknown> | undefined
      // A promise of the pool's own Promise class (node-postgres lets it be configured), or
      // nothing when a callback was passed.
      if (typeof result?.then !== 'function') return result
      return result.then(undefined, (error: unknown) => {
        // The server forgot the statement (DISCARD ALL, DEALLOCATE, a pooler) while node-postgres
        // still counts it as parsed and would never send it again. Whatever forgot one forgot the
        // others too: have every library statement parse again on its next use here.
        if (sqlStateOf(error) === SqlState.INVALID_SQL_STATEMENT_NAME) {
          const parsed = parsedStatements(this) ?? {}
          for (const statement of Object.keys(parsed)) if (statement.startsWith(NAME_PREFIX)) delete parsed[statement]
        }
        throw error
      })
    }
  })
  return pool
}
