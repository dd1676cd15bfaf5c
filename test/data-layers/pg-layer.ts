// node-postgres under the contract, for any copy of pg (the pinned one and the lowest supported).
import type { Pool, PoolClient } from 'pg'
import { database, withIdempotency } from '../../src/data/pg/index.ts'
import type { LayerUnderTest } from './layer-under-test.ts'

export function pgLayer(name: string, Pool: new (config: { connectionString: string; max: number }) => Pool): LayerUnderTest<PoolClient> {
  return {
    name,
    async open(url, maxConnections) {
      const pool = new Pool({ connectionString: url, max: maxConnections })
      return {
        database: database(pool),
        withIdempotency: (client, key, fn, options) => withIdempotency(client, key, fn, options),
        insertLedgerRow: async (client, scope, amount) => {
          await client.query('insert into contract_ledger (scope, amount) values ($1, $2)', [scope, amount])
        },
        notTransactions: async () => {
          const idle = await pool.connect()
          const committed = await pool.connect()
          await committed.query('begin')
          await committed.query('commit')
          return [
            { label: 'the Pool', value: pool },
            { label: 'a client outside BEGIN', value: idle, release: async () => idle.release() },
            { label: 'a client after COMMIT', value: committed, release: async () => committed.release() },
            { label: 'undefined', value: undefined },
          ]
        },
        close: () => pool.end(),
      }
    },
  }
}
