// Each data layer's real adapter, opened as the data-layer contract opens it (its pinned version),
// for the suites that run the library's other parts on every layer: migrations, jobs, the outbox.
import { drizzle } from 'drizzle-orm/node-postgres'
import knex from 'knex'
import pg from 'pg'
import postgres from 'postgres'
import { drizzleLayer } from './drizzle-layer.ts'
import { knexLayer } from './knex-layer.ts'
import type { LayerUnderTest } from './layer-under-test.ts'
import { pgLayer } from './pg-layer.ts'
import { postgresLayer } from './postgres-layer.ts'
import { prismaLayer } from './prisma-layer.ts'

export const pgReal = pgLayer('node-postgres', pg.Pool)
export const knexReal = knexLayer('Knex', (config) => knex(config))
export const postgresReal = postgresLayer('postgres.js', (url, options) => postgres(url, { ...options, onnotice: () => {} }))
export const drizzleReal = drizzleLayer('Drizzle (node-postgres)', (url, max) => {
  const pool = new pg.Pool({ connectionString: url, max })
  // node-postgres's advice for a pool: hear a client's errors (a connection lost between queries).
  pool.on('connect', (client) => client.on('error', () => {}))
  return { db: drizzle(pool), close: () => pool.end() }
})
export const prismaReal = prismaLayer

/** Every layer but kysely (whose own suites cover these parts). */
export const realLayers: LayerUnderTest[] = [pgReal, knexReal, postgresReal, drizzleReal, prismaReal]
