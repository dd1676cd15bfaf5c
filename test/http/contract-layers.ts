// The data layers the HTTP contracts run on: each opens the contract app (its `database(…)` and
// its business write, in the layer's own API) on a test database that has the `items` table.
import { sql as drizzleSql } from 'drizzle-orm'
import { drizzle } from 'drizzle-orm/node-postgres'
import knex from 'knex'
import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import postgres from 'postgres'
import { database as drizzleDatabase } from '../../src/data/drizzle/index.ts'
import { database as knexDatabase } from '../../src/data/knex/index.ts'
import { database as pgDatabase } from '../../src/data/pg/index.ts'
import { database as postgresDatabase } from '../../src/data/postgres/index.ts'
import { database as prismaDatabase } from '../../src/data/prisma/index.ts'
import { openPrisma, type PrismaTx } from '../data-layers/prisma-layer.ts'
import { kyselyApp, type ContractApp, type Item } from './contract-routes.ts'

export interface HttpLayer {
  name: string
  open(url: string): ContractApp & { close(): Promise<void> }
  /** Set (to the reason) for a layer that cannot pass the lost-connection case. */
  skipLostConnection?: string
}

const MAX = 10

export const kyselyHttp: HttpLayer = {
  name: 'kysely',
  open(url) {
    const pool = new pg.Pool({ connectionString: url, max: MAX })
    // node-postgres's advice for a pool: hear a client's errors (a connection lost between queries).
    pool.on('connect', (client) => client.on('error', () => {}))
    const db = new Kysely<any>({ dialect: new PostgresDialect({ pool }) })
    return { ...kyselyApp(db), close: () => db.destroy() }
  },
}

export const prismaHttp: HttpLayer = {
  name: 'Prisma',
  open(url) {
    const prisma = openPrisma(url, MAX)
    return {
      db: prismaDatabase(prisma),
      insertItem: async (tx: PrismaTx, name) => (await tx.$queryRaw<Item[]>`insert into items (name) values (${name}) returning id::text as id, name`)[0]!,
      close: () => prisma.$disconnect(),
    }
  },
}

export const postgresHttp: HttpLayer = {
  name: 'postgres.js',
  // As in the data-layer contract: postgres.js rejects sql.begin on close before fn settles.
  skipLostConnection: 'postgres.js rejects sql.begin on close before fn settles, then crashes on its own timer',
  open(url) {
    const sql = postgres(url, { max: MAX, onnotice: () => {} })
    return {
      db: postgresDatabase(sql),
      insertItem: async (tx: postgres.TransactionSql, name) => {
        const [row] = await tx<Item[]>`insert into items ${tx({ name })} returning id::text as id, name`
        return { ...row! }
      },
      close: () => sql.end(),
    }
  },
}

export const knexHttp: HttpLayer = {
  name: 'Knex',
  open(url) {
    const client = knex({ client: 'pg', connection: url, pool: { min: 0, max: MAX } })
    return {
      db: knexDatabase(client),
      insertItem: async (trx, name) => {
        const [row] = await trx('items').insert({ name }).returning(['id', 'name'])
        return { id: String(row.id), name: row.name }
      },
      close: () => client.destroy(),
    }
  },
}

export const drizzleHttp: HttpLayer = {
  name: 'Drizzle (node-postgres)',
  open(url) {
    const pool = new pg.Pool({ connectionString: url, max: MAX })
    // node-postgres's advice for a pool whose clients Drizzle checks out: hear a client's errors
    // (the lost-connection case ends one between queries; unheard, that ends the process).
    pool.on('connect', (client) => client.on('error', () => {}))
    return {
      db: drizzleDatabase(drizzle(pool)),
      insertItem: async (tx, name) => (await tx.execute(drizzleSql`insert into items (name) values (${name}) returning id::text as id, name`)).rows[0],
      close: () => pool.end(),
    }
  },
}

export const pgHttp: HttpLayer = {
  name: 'node-postgres',
  open(url) {
    const pool = new pg.Pool({ connectionString: url, max: MAX })
    return {
      db: pgDatabase(pool),
      insertItem: async (client: pg.PoolClient, name) => (await client.query<Item>('insert into items (name) values ($1) returning id::text as id, name', [name])).rows[0]!,
      close: () => pool.end(),
    }
  },
}
