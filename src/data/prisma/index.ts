// pg-idempotency for Prisma (7, through a driver adapter such as @prisma/adapter-pg): the library's
// API with Prisma's types. Imports neither Prisma nor kysely at run time.
import type { IdempotencyOptions } from '../../options.ts'
import { transactionFunctions } from '../transaction-functions.ts'
import { prismaSession, type PrismaTransactionClient } from './session.ts'

export {
  prismaDatabase,
  prismaDatabase as database,
  prismaSession,
  DEFAULT_PRISMA_TRANSACTION_OPTIONS,
  type PrismaClientLike,
  type PrismaTransactionClient,
  type PrismaTransactionOptions,
  type PrismaIsolationLevel,
} from './session.ts'
export { PrismaStatementError } from './driver-error.ts'
export * from '../../core-api.ts'

/** {@link withIdempotency}'s options; `Tx` is your generated client's transaction client. */
export type WithIdempotencyOptions<Tx extends PrismaTransactionClient = PrismaTransactionClient> = IdempotencyOptions<Tx>

/**
 * The transaction-level functions with this layer's types; `withIdempotency`:
 * Runs `fn` at most once per key: the claim on the key is written in the caller's Prisma
 * interactive transaction, so it commits or rolls back together with `fn`'s writes. `fn` gets
 * the same `tx`, with your generated client's types.
 *
 * Give the transaction a `timeout` longer than the key's `waitTimeout` (10 s by default) plus your
 * handler's work: Prisma's default of 5 s rolls back a request that waited for a concurrent twin.
 * Passing the PrismaClient instead of `tx` is a type error, and refused (`IDEMPOTENCY_USAGE`).
 *
 * @example
 * ```ts
 * import { withIdempotency } from 'pg-idempotency/prisma'
 *
 * const outcome = await prisma.$transaction(
 *   (tx) =>
 *     withIdempotency(tx, { scope: 'acct_42:POST /deposits', key, request: body }, async (tx) => {
 *       const row = await tx.ledger.create({ data: entry })
 *       return { status: 201, body: row }
 *     }),
 *   { timeout: 30_000 },
 * )
 * ```
 */
export const { withIdempotency, withInbox, emit, createCustomer, findCustomer, resolveCustomer } = transactionFunctions<PrismaTransactionClient>(prismaSession)
