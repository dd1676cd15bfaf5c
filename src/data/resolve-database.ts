import type { Kysely, Transaction } from 'kysely'
import { IdempotencyUsageError } from '../errors.ts'
import { isIdempotencyDatabase, type IdempotencyDatabase } from './database.ts'
import { kyselyDatabase } from './kysely/session.ts'

/**
 * What the library's HTTP adapters, customers, outbox, inbox and jobs take as `db`: any data
 * layer's {@link IdempotencyDatabase} (`database(prisma)` from `pg-idempotency/prisma`, say), or
 * a Kysely instance as before. `DatabaseInput` alone (`Tx` any) takes any of them.
 */
export type DatabaseInput<Tx extends object = any> = IdempotencyDatabase<Tx> | (Tx extends Transaction<infer DB> ? Kysely<unknown extends DB ? any : DB> : never)

/**
 * The transaction type the library hands callbacks for a database `D`: an
 * {@link IdempotencyDatabase}`<Tx>` gives `Tx`, a `Kysely<DB>` gives `Transaction<DB>`. Any other
 * type is taken for a kysely database type `DB` (as the HTTP types' parameter was before any data
 * layer could be used) and gives `Transaction<DB>`.
 */
export type TransactionOf<D> = 0 extends 1 & D ? any : D extends IdempotencyDatabase<infer Tx> ? Tx : D extends Kysely<infer DB> ? Transaction<DB> : Transaction<D>

/** `input` as an {@link IdempotencyDatabase}; a Kysely instance goes through the kysely adapter. */
export function toDatabase<Tx extends object>(input: DatabaseInput<Tx> | Kysely<any>): IdempotencyDatabase<Tx> {
  if (isIdempotencyDatabase(input)) return input as IdempotencyDatabase<Tx>
  const candidate = input as { transaction?: unknown; executeQuery?: unknown; isTransaction?: unknown } | null | undefined
  if (typeof candidate?.transaction === 'function' && typeof candidate.executeQuery === 'function' && candidate.isTransaction === false) {
    return kyselyDatabase(input as Kysely<any>) as unknown as IdempotencyDatabase<Tx>
  }
  throw new IdempotencyUsageError(
    "db must be a data layer's database (database(db) from 'pg-idempotency/<layer>') or a Kysely instance (not one of its transactions).",
  )
}
