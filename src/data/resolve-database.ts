import type { Kysely, Transaction } from 'kysely'
import { IdempotencyUsageError } from '../errors.ts'
import { isIdempotencyDatabase, type IdempotencyDatabase } from './database.ts'
import { kyselyDatabase } from './kysely/session.ts'

/**
 * What the library's HTTP adapters, customers, outbox, inbox and jobs take as `db`: any data
 * layer's {@link IdempotencyDatabase} (`database(prisma)` from `pg-idempotency/prisma`, say), or
 * a Kysely instance as before.
 */
export type DatabaseInput<Tx extends object = any> = IdempotencyDatabase<Tx> | KyselyOf<Tx>

// Any Kysely instance when `Tx` is left open (`infer` on `any` would give `Kysely<unknown>`, which
// a `Kysely<MyDatabase>` is not).
type KyselyOf<Tx> = unknown extends Tx ? Kysely<any> : Tx extends Transaction<infer DB> ? Kysely<DB> : never

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
