// optimizedDialect: kysely's PostgresDialect, with the library's statements cheaper.
//
// Sent as kysely sends every query, a first call adds two round trips to its transaction (the
// claim, the stored result) and the server parses and plans both each time. Through this dialect:
// - both are named prepared statements, parsed once per connection and then only bound and
//   executed. Only statements without a plan choice carry a name (a function call, a one-row
//   INSERT ... VALUES), so a cached generic plan cannot turn into a sequential scan;
// - the claim goes in the same message as its transaction's BEGIN, and the stored result in the
//   same message as its COMMIT (see batching-connection.ts), so a first call makes as many round
//   trips as the bare transaction, and a replay one fewer.
//
// It is kysely's own PostgresDialect underneath, wrapped through kysely's documented Dialect and
// Driver interfaces; the library's statements are known by the Statement each compiled query was
// made from (session.ts), and reach node-postgres as Submittables (pg-wire/batch-query.ts).
import { AsyncLocalStorage } from 'node:async_hooks'
import { createRequire } from 'node:module'
import type {
  DatabaseConnection,
  DatabaseIntrospector,
  Dialect,
  DialectAdapter,
  Driver,
  Kysely,
  PostgresDialectConfig,
  PostgresPool,
  PostgresPoolClient,
  QueryCompiler,
  TransactionSettings,
} from 'kysely'
import type { BatchClient } from '../pg-wire/batch-query.ts'
import { BatchingConnection } from './batching-connection.ts'

/** {@link optimizedDialect}'s own options. */
export interface OptimizedDialectOptions {
  /**
   * Send the claim with BEGIN and the stored result with COMMIT (default). `false` keeps the
   * prepared statements and sends each statement in a round trip of its own.
   */
  batching?: boolean
}

/**
 * A kysely dialect for PostgreSQL through node-postgres that sends pg-idempotency's claim and
 * stored result as named prepared statements, the claim in one message with BEGIN and the stored
 * result in one with COMMIT. It takes what kysely's `PostgresDialect` takes and is that dialect
 * for everything else.
 *
 * Leave it off behind PgBouncer in transaction pooling mode unless PgBouncer is 1.21 or later
 * with `max_prepared_statements` set, and on connections where something runs `DISCARD ALL` or
 * `DEALLOCATE ALL`: both make the server forget statements the connection has prepared (the
 * transaction that meets it fails with a retryable error, and the connection prepares again).
 *
 * @example
 * ```ts
 * const db = new Kysely<Database>({ dialect: optimizedDialect({ pool: new pg.Pool({ connectionString }) }) })
 * ```
 */
export function optimizedDialect(config: PostgresDialectConfig, { batching = true }: OptimizedDialectOptions = {}): Dialect {
  // kysely is an optional peer that `import 'pg-idempotency'` must not load: it is loaded here,
  // synchronously (a Dialect's factories are), when a kysely user asks for this dialect.
  const { PostgresDialect } = createRequire(import.meta.url)('kysely') as typeof import('kysely')
  const acquiring = new AsyncLocalStorage<{ client?: PostgresPoolClient }>()
  const dialect = new PostgresDialect({ ...config, pool: watchedPool(config.pool, acquiring) })
  return {
    createAdapter: (): DialectAdapter => dialect.createAdapter(),
    createQueryCompiler: (): QueryCompiler => dialect.createQueryCompiler(),
    createIntrospector: (db: Kysely<any>): DatabaseIntrospector => dialect.createIntrospector(db),
    createDriver: (): Driver => new OptimizedDriver(dialect.createDriver(), acquiring, batching),
  }
}

type Pool = PostgresDialectConfig['pool']

/**
 * The pool kysely's driver gets: the caller's, through kysely's documented PostgresPool
 * interface, telling the acquisition under way which node-postgres client it handed out.
 */
function watchedPool(pool: Pool, acquiring: AsyncLocalStorage<{ client?: PostgresPoolClient }>): Pool {
  const watch = (pool: PostgresPool): PostgresPool => ({
    get options() {
      return pool.options
    },
    get Client() {
      return pool.Client
    },
    connect: async () => {
      const client = await pool.connect()
      const slot = acquiring.getStore()
      if (slot !== undefined) slot.client = client
      return client
    },
    end: () => pool.end(),
  })
  return typeof pool === 'function' ? async (options) => watch(await pool(options)) : watch(pool)
}

class OptimizedDriver implements Driver {
  readonly #inner: Driver
  readonly #acquiring: AsyncLocalStorage<{ client?: PostgresPoolClient }>
  readonly #batching: boolean
  readonly #connections = new WeakMap<DatabaseConnection, BatchingConnection>()

  constructor(inner: Driver, acquiring: AsyncLocalStorage<{ client?: PostgresPoolClient }>, batching: boolean) {
    this.#inner = inner
    this.#acquiring = acquiring
    this.#batching = batching
  }

  init(...args: Parameters<Driver['init']>): Promise<void> {
    return this.#inner.init(...args)
  }

  async acquireConnection(...args: Parameters<Driver['acquireConnection']>): Promise<DatabaseConnection> {
    const slot: { client?: PostgresPoolClient } = {}
    const connection = await this.#acquiring.run(slot, () => this.#inner.acquireConnection(...args))
    let batching = this.#connections.get(connection)
    if (batching === undefined) {
      const client = batchClientOf(slot.client)
      // No client to send batches on: kysely's connection as it is.
      if (client === undefined) return connection
      batching = new BatchingConnection(connection, client, this.#batching)
      this.#connections.set(connection, batching)
    }
    return batching
  }

  beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    return connection instanceof BatchingConnection ? connection.begin(this.#inner, settings) : this.#inner.beginTransaction(connection, settings)
  }

  commitTransaction(connection: DatabaseConnection): Promise<void> {
    return connection instanceof BatchingConnection ? connection.commit(this.#inner) : this.#inner.commitTransaction(connection)
  }

  rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    return connection instanceof BatchingConnection ? connection.rollback(this.#inner) : this.#inner.rollbackTransaction(connection)
  }

  // Savepoints run through the connection's executeQuery, after whatever it holds back.
  async savepoint(...args: Parameters<NonNullable<Driver['savepoint']>>): Promise<void> {
    await this.#inner.savepoint!(...args)
  }

  async rollbackToSavepoint(...args: Parameters<NonNullable<Driver['rollbackToSavepoint']>>): Promise<void> {
    await this.#inner.rollbackToSavepoint!(...args)
  }

  async releaseSavepoint(...args: Parameters<NonNullable<Driver['releaseSavepoint']>>): Promise<void> {
    await this.#inner.releaseSavepoint!(...args)
  }

  async releaseConnection(connection: DatabaseConnection, ...rest: unknown[]): Promise<void> {
    if (connection instanceof BatchingConnection) connection.release()
    await this.#inner.releaseConnection(connection instanceof BatchingConnection ? connection.inner : connection, ...(rest as []))
  }

  destroy(...args: Parameters<Driver['destroy']>): Promise<void> {
    return this.#inner.destroy(...args)
  }
}

/**
 * The client as a batch needs it, or undefined where batches cannot go: node-postgres's pipeline
 * mode refuses Submittables such as the batches, and pg-native's clients have no protocol
 * connection to write them to. Such connections run the library's statements as they come.
 */
function batchClientOf(client: PostgresPoolClient | undefined): BatchClient | undefined {
  const candidate = client as (PostgresPoolClient & Partial<BatchClient> & { pipeline?: unknown; native?: unknown }) | undefined
  if (candidate === undefined || candidate.pipeline === true || candidate.native !== undefined || typeof candidate.getTypeParser !== 'function') return undefined
  return candidate as unknown as BatchClient
}
