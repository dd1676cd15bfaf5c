// optimizePool: the library's statements cheaper on a node-postgres pool that opts in.
//
// Sent as kysely sends every query, a first call adds two round trips to its transaction (the
// claim, the stored result) and the server parses and plans both each time. On a pool set up
// with optimizePool:
// - both are named prepared statements, parsed once per connection and then only bound and
//   executed. Only statements without a plan choice are named (a function call, a one-row
//   INSERT ... VALUES), so a cached generic plan cannot turn into a sequential scan as the key
//   table grows;
// - the claim goes in the same message as its transaction's BEGIN, and the stored result in the
//   same message as its COMMIT (see transaction-batcher.ts), so a first call makes as many round
//   trips as the bare transaction, and a replay one fewer.
//
// kysely's pg driver cannot name a statement or batch two, so this works one level down, on the
// pool's clients. Every other query goes through untouched, in order.
import { IdempotencyUsageError } from '../errors.ts'
import { TransactionBatcher, type BatchingClient } from './transaction-batcher.ts'

/** The part of a node-postgres `Pool` this needs. */
export interface OptimizablePool {
  // node-postgres's Pool types its events with a conditional type no plain overload matches.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  on(event: 'connect' | 'release', listener: (...args: any[]) => void): unknown
  totalCount?: number
}

const batchers = new WeakMap<BatchingClient, TransactionBatcher>()

/**
 * Makes a node-postgres `Pool` send pg-idempotency's claim and stored result as named prepared
 * statements, the claim in one message with BEGIN and the stored result in one with COMMIT.
 * Call it right after creating the pool, before its first connection; it returns the pool.
 *
 * Leave it off behind PgBouncer in transaction pooling mode unless PgBouncer is 1.21 or later
 * with `max_prepared_statements` set, and on connections where something runs `DISCARD ALL` or
 * `DEALLOCATE ALL`: both make the server forget statements the client believes are prepared
 * (the transaction that meets it fails with a retryable error, and the connection recovers).
 *
 * @example
 * ```ts
 * const pool = optimizePool(new pg.Pool({ connectionString }))
 * const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) })
 * ```
 */
export function optimizePool<P extends OptimizablePool>(pool: P, { batching = true }: { batching?: boolean } = {}): P {
  if ((pool.totalCount ?? 0) > 0) {
    throw new IdempotencyUsageError('optimizePool must be called before the pool opens its first connection; the open ones would stay unoptimized.')
  }
  pool.on('connect', (client: BatchingClient & { pipeline?: boolean }) => {
    // node-postgres's pipeline mode refuses Submittables such as the batches, and pg-native's
    // clients have no protocol connection to write them to: such a pool's connections send the
    // library's statements as they come.
    if (batchers.has(client) || client.pipeline === true || client.connection === undefined) return
    const batcher = new TransactionBatcher(client, client.query.bind(client), batching)
    batchers.set(client, batcher)
    client.query = (...args: unknown[]) => batcher.query(args)
  })
  pool.on('release', (_error: unknown, client: BatchingClient) => batchers.get(client)?.reset())
  return pool
}
