import { IdempotencyUsageError } from '../errors.ts'
import { isIdempotencyDatabase, type IdempotencyDatabase } from './database.ts'
import { kyselyDatabase } from './kysely/session.ts'

/**
 * A Kysely instance as the library sees it, structurally: `kysely` is an optional peer, so no
 * type of the library's layer-neutral API may name it (a Prisma user has no kysely to resolve).
 */
export interface KyselyLike<Tx extends object> {
  readonly isTransaction: boolean
  transaction(): { execute<T>(fn: (tx: Tx) => Promise<T>): Promise<T> }
  executeQuery: (...args: never[]) => unknown
}

/**
 * What the library's HTTP adapters, customers, outbox, inbox and jobs take as `db`: any data
 * layer's {@link IdempotencyDatabase} (`database(prisma)` from `pg-idempotency/prisma`, say), or
 * a Kysely instance as before. `DatabaseInput` alone (`Tx` any) takes any of them.
 */
export type DatabaseInput<Tx extends object = any> = IdempotencyDatabase<Tx> | KyselyLike<Tx>

/**
 * The transaction type the library hands callbacks for a database `D`: an
 * {@link IdempotencyDatabase}`<Tx>` gives `Tx`, a `Kysely<DB>` gives `Transaction<DB>`.
 */
export type TransactionOf<D> = 0 extends 1 & D ? any : D extends IdempotencyDatabase<infer Tx> ? Tx : D extends KyselyLike<infer Tx> ? Tx : any

/** `input` as an {@link IdempotencyDatabase}; a Kysely instance goes through the kysely adapter. */
export function toDatabase<Tx extends object>(input: DatabaseInput<Tx>): IdempotencyDatabase<Tx> {
  if (isIdempotencyDatabase(input)) return input as IdempotencyDatabase<Tx>
  const candidate = input as { transaction?: unknown; executeQuery?: unknown; isTransaction?: unknown } | null | undefined
  if (typeof candidate?.transaction === 'function' && typeof candidate.executeQuery === 'function' && candidate.isTransaction === false) {
    return kyselyDatabase(input as never) as unknown as IdempotencyDatabase<Tx>
  }
  throw new IdempotencyUsageError(
    "db must be a data layer's database (database(db) from 'pg-idempotency/<layer>') or a Kysely instance (not one of its transactions).",
  )
}
