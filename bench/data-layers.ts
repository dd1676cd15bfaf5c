// The data layers bench/layers.ts compares: for each, its own transaction, the single insert
// written as a user of that layer writes it, and that layer's withIdempotency.
import { PrismaPg } from '@prisma/adapter-pg'
import { drizzle } from 'drizzle-orm/node-postgres'
import { bigserial, integer, pgTable } from 'drizzle-orm/pg-core'
import knex from 'knex'
import { Kysely, PostgresDialect, type Transaction } from 'kysely'
import type { PoolClient } from 'pg'
import postgres, { type TransactionSql } from 'postgres'
import { optimizedDialect, withIdempotency as kyselyWithIdempotency } from '../src/index.ts'
import * as drizzleLayer from '../src/data/drizzle/index.ts'
import * as knexLayer from '../src/data/knex/index.ts'
import * as pgLayer from '../src/data/pg/index.ts'
import * as postgresLayer from '../src/data/postgres/index.ts'
import * as prismaLayer from '../src/data/prisma/index.ts'
import type { IdempotencyKeyInput } from '../src/key.ts'
import type { IdempotencyOutcome } from '../src/with-idempotency.ts'
import { PrismaClient, type Prisma } from '../test/data-layers/prisma/generated/client.ts'
import { benchPool } from './measure.ts'
import { scenarios, type BenchDatabase, type Deposit } from './scenarios.ts'

/** What the business transaction answers: the new ledger row's id, as text on every layer. */
export interface Inserted {
  id: string
}

/** One data layer, connected. */
export interface OpenLayer<Tx> {
  /** The layer's own transaction: commits when `fn` resolves, rolls back when it throws. */
  transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T>
  /** The business write: one ledger row. */
  insert(tx: Tx, deposit: Deposit): Promise<Inserted>
  /** The layer's withIdempotency. */
  withIdempotency<T>(tx: Tx, key: IdempotencyKeyInput, fn: (tx: Tx) => Promise<T>): Promise<IdempotencyOutcome<T>>
  close(): Promise<void>
}

/** What the library's design adds to the bare transaction on this layer, per call. */
export interface Design {
  /** Extra statements sent in a first call and a replay. */
  statements: { first: number; replay: number }
  /** Extra round trips in a first call and a replay. */
  trips: { first: number; replay: number }
}

export interface DataLayer {
  name: string
  design: Design
  open(url: string, connections: number): OpenLayer<any>
}

const INSERT = 'insert into ledger (account_id, amount) values ($1, $2) returning id'

// Any layer that sends each statement as it comes: the claim and the store in round trips of their
// own; a replay's claim takes the place of the business insert.
const PLAIN: Design = { statements: { first: 2, replay: 0 }, trips: { first: 2, replay: 0 } }
// optimizedDialect: the claim in BEGIN's message, the store in COMMIT's; a replay's claim goes
// with BEGIN, so it saves the insert's round trip.
const OPTIMIZED: Design = { statements: { first: 2, replay: 0 }, trips: { first: 0, replay: -1 } }

const ledger = pgTable('ledger', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  accountId: integer('account_id').notNull(),
  amount: integer('amount').notNull(),
})

function kyselyOn(dialect: 'plain' | 'optimized') {
  return (url: string, connections: number): OpenLayer<Transaction<BenchDatabase>> => {
    const pool = benchPool(url, connections)
    const db = new Kysely<BenchDatabase>({ dialect: dialect === 'plain' ? new PostgresDialect({ pool }) : optimizedDialect({ pool }) })
    return {
      transaction: (fn) => db.transaction().execute(fn),
      insert: async (tx, deposit) => (await scenarios[0]!.run(tx, deposit)) as Inserted,
      withIdempotency: (tx, key, fn) => kyselyWithIdempotency(tx, key, fn),
      close: () => db.destroy(),
    }
  }
}

export const dataLayers: DataLayer[] = [
  { name: 'kysely', design: PLAIN, open: kyselyOn('plain') },
  { name: 'kysely, optimizedDialect', design: OPTIMIZED, open: kyselyOn('optimized') },
  {
    name: 'node-postgres',
    design: PLAIN,
    open(url, connections): OpenLayer<PoolClient> {
      const pool = benchPool(url, connections)
      return {
        // BEGIN and COMMIT by hand, as node-postgres's documentation writes a transaction.
        async transaction(fn) {
          const client = await pool.connect()
          try {
            await client.query('begin')
            const result = await fn(client)
            await client.query('commit')
            return result
          } catch (error) {
            await client.query('rollback')
            throw error
          } finally {
            client.release()
          }
        },
        insert: async (client, { account, amount }) => (await client.query<Inserted>(INSERT, [account, amount])).rows[0]!,
        withIdempotency: (client, key, fn) => pgLayer.withIdempotency(client, key, fn),
        close: () => pool.end(),
      }
    },
  },
  {
    name: 'Drizzle (node-postgres)',
    design: PLAIN,
    open(url, connections): OpenLayer<drizzleLayer.DrizzleTransaction> {
      const pool = benchPool(url, connections)
      const db = drizzle(pool)
      return {
        transaction: (fn) => db.transaction(fn),
        insert: async (tx, { account, amount }) => {
          const [row] = await tx.insert(ledger).values({ accountId: account, amount }).returning({ id: ledger.id })
          return { id: String(row!.id) }
        },
        withIdempotency: (tx, key, fn) => drizzleLayer.withIdempotency(tx, key, fn),
        close: () => pool.end(),
      }
    },
  },
  {
    name: 'Knex',
    design: PLAIN,
    open(url, connections): OpenLayer<knex.Knex.Transaction> {
      // Idle connections stay open, as benchPool's do.
      const db = knex({ client: 'pg', connection: url, pool: { min: 0, max: connections, idleTimeoutMillis: 3_600_000 } })
      return {
        transaction: (fn) => db.transaction(fn),
        insert: async (trx, { account, amount }) => (await trx('ledger').insert({ account_id: account, amount }).returning<Inserted[]>('id'))[0]!,
        withIdempotency: (trx, key, fn) => knexLayer.withIdempotency(trx, key, fn),
        close: () => db.destroy(),
      }
    },
  },
  {
    name: 'Prisma (@prisma/adapter-pg)',
    design: PLAIN,
    open(url, connections): OpenLayer<Prisma.TransactionClient> {
      const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: url, max: connections, idleTimeoutMillis: 0 }) })
      return {
        transaction: (fn) => prisma.$transaction(fn),
        // The ledger is not a model of the tests' schema: a raw insert, its bigint id cast to text.
        insert: async (tx, { account, amount }) =>
          (await tx.$queryRaw<Inserted[]>`insert into ledger (account_id, amount) values (${account}, ${amount}) returning id::text as id`)[0]!,
        withIdempotency: (tx, key, fn) => prismaLayer.withIdempotency(tx, key, fn),
        close: () => prisma.$disconnect(),
      }
    },
  },
  {
    name: 'postgres.js',
    design: PLAIN,
    open(url, connections): OpenLayer<TransactionSql> {
      // postgres.js keeps idle connections open unless told otherwise.
      const sql = postgres(url, { max: connections, onnotice: () => {} })
      return {
        transaction: (fn) => sql.begin(fn) as never,
        insert: async (tx, { account, amount }) => (await tx<Inserted[]>`insert into ledger (account_id, amount) values (${account}, ${amount}) returning id`)[0]!,
        withIdempotency: (tx, key, fn) => postgresLayer.withIdempotency(tx, key, fn),
        close: () => sql.end(),
      }
    },
  },
]
