// Prisma through the seam: its interactive transaction client runs the library's statements with
// $queryRawUnsafe. Nothing here imports Prisma: the types are structural, so the user's own
// generated client (and its extensions) fit, and `@prisma/client` stays an optional peer.
import { defineDatabase, notATransaction, type IdempotencyDatabase, type IsolationLevel } from '../database.ts'
import type { Row, SqlSession } from '../sql-session.ts'
import { fromPrismaError } from './driver-error.ts'

/**
 * What the library needs of Prisma's interactive transaction client, the `tx` of
 * `prisma.$transaction(async (tx) => ...)`. That client has no `$connect` (Prisma removes it, with
 * `$disconnect`, `$on` and `$extends`), which is what tells it from the PrismaClient: passing the
 * client, whose raw queries each commit on their own, is a type error.
 */
export interface PrismaTransactionClient {
  $queryRawUnsafe<T = unknown>(query: string, ...values: any[]): PromiseLike<T>
  $executeRawUnsafe(query: string, ...values: any[]): PromiseLike<number>
  $connect?: never
}

/** Prisma's names of the isolation levels, as `$transaction` takes them. */
export type PrismaIsolationLevel = 'ReadUncommitted' | 'ReadCommitted' | 'RepeatableRead' | 'Serializable'

/** The options of Prisma's interactive `$transaction`. */
export interface PrismaTransactionOptions {
  isolationLevel?: PrismaIsolationLevel
  /** How long Prisma waits to start the transaction (get a connection), in milliseconds. */
  maxWait?: number
  /** How long the transaction may run before Prisma rolls it back, in milliseconds. */
  timeout?: number
}

/** What {@link prismaDatabase} needs of a PrismaClient (or an extended one): its interactive `$transaction`. */
export interface PrismaClientLike<Tx extends PrismaTransactionClient> {
  $transaction<R>(fn: (tx: Tx) => Promise<R>, options?: PrismaTransactionOptions): PromiseLike<R>
}

const ISOLATION: Readonly<Record<IsolationLevel, PrismaIsolationLevel>> = {
  'read uncommitted': 'ReadUncommitted',
  'read committed': 'ReadCommitted',
  'repeatable read': 'RepeatableRead',
  serializable: 'Serializable',
}

/**
 * The transactions {@link prismaDatabase} opens. Prisma's own defaults (`timeout` 5 s, `maxWait`
 * 2 s) would roll back a request whose key waited out a concurrent twin (`waitTimeout`, 10 s by
 * default) before its handler even ran; these leave the claim its wait and the handler its work.
 */
export const DEFAULT_PRISMA_TRANSACTION_OPTIONS = { timeout: 60_000, maxWait: 10_000 } as const satisfies PrismaTransactionOptions

/** The seam for Prisma's interactive transaction client; the PrismaClient itself is refused before any statement runs. */
export function prismaSession<Tx extends PrismaTransactionClient>(tx: Tx): SqlSession<Tx> {
  const candidate = tx as { $queryRawUnsafe?: unknown; $connect?: unknown } | null | undefined
  if (typeof candidate?.$queryRawUnsafe !== 'function' || typeof candidate.$connect === 'function') {
    throw notATransaction('prisma', 'pass the `tx` of prisma.$transaction(async (tx) => ...), not the PrismaClient: outside a transaction each raw query commits on its own.')
  }
  return {
    transaction: tx,
    run: async (statement): Promise<Row[]> => {
      try {
        // $queryRawUnsafe reads one result's columns and fails on the several results a script
        // returns; $executeRawUnsafe only counts rows.
        if (statement.script) {
          await tx.$executeRawUnsafe(statement.text)
          return []
        }
        return (await tx.$queryRawUnsafe<Row[]>(statement.text, ...statement.values)) ?? []
      } catch (error) {
        throw fromPrismaError(error)
      }
    },
  }
}

/**
 * A PrismaClient (or an extended one) as the library's database, for the HTTP adapters, customers,
 * the outbox and the jobs: `transaction` opens `prisma.$transaction(fn, options)` at the isolation
 * level asked for, with {@link DEFAULT_PRISMA_TRANSACTION_OPTIONS} (`timeout` 60 s, `maxWait`
 * 10 s) unless `options` says otherwise. Exported as `database` from `pg-idempotency/prisma`.
 *
 * @example
 * ```ts
 * import { database } from 'pg-idempotency/prisma'
 *
 * const db = database(new PrismaClient({ adapter: new PrismaPg({ connectionString }) }))
 * ```
 */
export function prismaDatabase<Tx extends PrismaTransactionClient>(
  prisma: PrismaClientLike<Tx>,
  options: Omit<PrismaTransactionOptions, 'isolationLevel'> = {},
): IdempotencyDatabase<Tx> {
  const { timeout, maxWait } = { ...DEFAULT_PRISMA_TRANSACTION_OPTIONS, ...options }
  return defineDatabase<Tx>({
    layer: 'prisma',
    transaction: async (fn, { isolation }) => {
      let failure: unknown
      try {
        return await prisma.$transaction(
          async (tx) => {
            try {
              return await fn(tx)
            } catch (error) {
              failure = error
              throw error
            }
          },
          { timeout, maxWait, ...(isolation === undefined ? {} : { isolationLevel: ISOLATION[isolation] }) },
        )
      } catch (error) {
        // fn's own error as it was thrown; BEGIN's or COMMIT's with the SQLSTATE it wraps.
        throw error === failure ? error : fromPrismaError(error)
      }
    },
    session: prismaSession,
    driverError: fromPrismaError,
  })
}
