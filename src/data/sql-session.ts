import type { Statement } from './statement.ts'

/** A row as the library reads it: every column it selects is text (or null), decoded by the library. */
export type Row = Record<string, unknown>

/**
 * The seam: the one thing pg-idempotency needs of a data layer. A session runs the library's
 * statements inside one transaction the caller opened, on that transaction's connection, and
 * returns their rows. Claims, stored results, customers, events, inbox entries, sweeps and
 * deletions all go through it; nothing else of the data layer is used.
 *
 * The library reads only columns it cast to text itself, so a layer's own type parsers (Drizzle's
 * timestamps as strings, Prisma's BigInt) never change what it sees. A layer turns errors into
 * nothing of its own: the driver's error (with its SQLSTATE `code`) should pass through.
 */
export interface SqlSession<Tx extends object = object> {
  /**
   * The caller's transaction as the data layer knows it (a kysely `Transaction`, a `PoolClient`,
   * Prisma's transaction client). Calls nested inside one another on it share it.
   */
  readonly transaction: Tx
  /** Runs `statement` in the transaction and resolves with the rows it returned (none for most). */
  run(statement: Statement): Promise<Row[]>
}
