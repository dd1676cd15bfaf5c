import { Kysely, PostgresDialect, type Transaction } from 'kysely'
import pg from 'pg'
import { database, withIdempotency } from '../../src/data/kysely/index.ts'
import { runDataLayerContract } from './contract.ts'

runDataLayerContract({
  name: 'kysely',
  async open(url, maxConnections) {
    const pool = new pg.Pool({ connectionString: url, max: maxConnections })
    // node-postgres's advice for a pool: hear a client's errors (a connection lost between queries).
    pool.on('connect', (client) => client.on('error', () => {}))
    const db = new Kysely<any>({ dialect: new PostgresDialect({ pool }) })
    return {
      database: database(db),
      withIdempotency: (tx, key, fn, options) => withIdempotency(tx, key, fn, options),
      insertLedgerRow: async (tx: Transaction<any>, scope, amount) => {
        await tx.insertInto('contract_ledger').values({ scope, amount }).execute()
      },
      notTransactions: async () => [{ label: 'the Kysely instance', value: db }],
      close: () => db.destroy(),
    }
  },
})
