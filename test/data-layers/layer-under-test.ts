// What the data-layer contract suite needs of one data layer: the same shape for kysely,
// node-postgres, Drizzle, Knex, Prisma and postgres.js, so one suite runs once per layer.
import type { IdempotencyDatabase, IdempotencyKeyInput, IdempotencyOptions, IdempotencyOutcome } from '../../src/index.ts'

/** One data layer opened on one test database. */
export interface OpenLayer<Tx extends object> {
  /** The layer's database: opens transactions at an isolation level, gives the seam. */
  database: IdempotencyDatabase<Tx>
  /** The layer's own `withIdempotency` (its subpath's export), natively typed. */
  withIdempotency<T>(tx: Tx, key: IdempotencyKeyInput, fn: (tx: Tx) => Promise<T> | T, options?: IdempotencyOptions<Tx>): Promise<IdempotencyOutcome<T>>
  /** A business write through the layer's own API (not the seam): one row in `contract_ledger`. */
  insertLedgerRow(tx: Tx, scope: string, amount: number): Promise<void>
  /**
   * Things a user could wrongly pass where a transaction is expected (the pool, the client, an
   * autocommit connection): each must be refused with IDEMPOTENCY_USAGE before any statement runs.
   */
  notTransactions(): Promise<Array<{ label: string; value: unknown; release?: () => Promise<void> }>>
  close(): Promise<void>
}

export interface LayerUnderTest<Tx extends object = any> {
  name: string
  /** Opens the layer on `url` (a migrated database with a `contract_ledger(scope text, amount int)` table). */
  open(url: string, maxConnections: number): Promise<OpenLayer<Tx>>
  /**
   * Set (to the reason) for a layer that cannot pass the lost-connection case: the contract then
   * skips it and says why. Omitted: the case runs.
   */
  skipLostConnection?: string
}
