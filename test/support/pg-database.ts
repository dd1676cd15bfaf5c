// A minimal node-postgres data layer for tests, built only from the public seam (defineDatabase):
// what a user of a layer without an adapter writes. Its pool parses no type at all (every value
// comes back as the server's text, timestamptz included, as Drizzle returns timestamps), so a
// test over it shows the library decodes what it reads itself.
import pg from 'pg'
import { defineDatabase, IdempotencyUsageError, type IdempotencyDatabase } from '../../src/index.ts'

/** A pool whose type parsers return every value as text. */
export function textOnlyPool(connectionString: string, max = 10): pg.Pool {
  return new pg.Pool({ connectionString, max, types: { getTypeParser: () => (value: string) => value } as never })
}

/** `pool` as the library's database: a transaction is a PoolClient inside BEGIN … COMMIT. */
export function pgDatabase(pool: pg.Pool): IdempotencyDatabase<pg.PoolClient> {
  const open = new WeakSet<pg.PoolClient>()
  return defineDatabase<pg.PoolClient>({
    layer: 'pg (test)',
    async transaction(fn, { isolation }) {
      const client = await pool.connect()
      let broken: Error | undefined
      try {
        await client.query(isolation === undefined ? 'begin' : `begin isolation level ${isolation}`)
        open.add(client)
        const result = await fn(client)
        await client.query('commit')
        return result
      } catch (error) {
        await client.query('rollback').catch((rollbackError: Error) => (broken = rollbackError))
        throw error
      } finally {
        open.delete(client)
        client.release(broken)
      }
    },
    session(client) {
      if (!open.has(client)) throw new IdempotencyUsageError('pg-idempotency must run inside a transaction (pg (test)).')
      return { transaction: client, run: async (statement) => (await client.query(statement.text, statement.values as unknown[])).rows }
    },
  })
}
