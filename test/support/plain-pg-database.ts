// A minimal IdempotencyDatabase over node-postgres, built the way a user of a layer the library
// does not know would: BEGIN/COMMIT on a PoolClient, statements through client.query. Its pool
// may have type parsers of its own (every value a string, say): the library must not care.
import pg from 'pg'
import { defineDatabase, type IdempotencyDatabase } from '../../src/index.ts'
import { notATransaction } from '../../src/data/database.ts'

/** Every column as the server's text: timestamptz, int8, jsonb, bool, all strings. */
export const RAW_STRING_TYPES: pg.CustomTypesConfig = { getTypeParser: () => (value: string) => value }

export function plainPgDatabase(pool: pg.Pool): IdempotencyDatabase<pg.PoolClient> {
  // The clients inside BEGIN right now: anything else is refused before a statement runs.
  const open = new WeakSet<pg.PoolClient>()
  return defineDatabase<pg.PoolClient>({
    layer: 'plain node-postgres',
    transaction: async (fn, { isolation }) => {
      const client = await pool.connect()
      let broken = false
      try {
        await client.query(isolation === undefined ? 'begin' : `begin isolation level ${isolation}`)
        open.add(client)
        try {
          const result = await fn(client)
          await client.query('commit')
          return result
        } catch (error) {
          await client.query('rollback').catch(() => (broken = true))
          throw error
        } finally {
          open.delete(client)
        }
      } finally {
        client.release(broken)
      }
    },
    session: (client) => {
      if (!open.has(client)) throw notATransaction('plain node-postgres', 'pass the client of an open transaction.')
      return { transaction: client, run: async (statement) => (await client.query(statement.text, statement.values as unknown[])).rows }
    },
  })
}
