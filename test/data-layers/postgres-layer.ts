// postgres.js under the contract, for any copy of it (the pinned one and the lowest supported).
import type postgres from 'postgres'
import type { TransactionSql } from 'postgres'
import { database, withIdempotency } from '../../src/data/postgres/index.ts'
import type { LayerUnderTest } from './layer-under-test.ts'

export function postgresLayer(name: string, connect: (url: string, options: { max: number }) => postgres.Sql): LayerUnderTest<TransactionSql> {
  return {
    name,
    // sql.begin rejects with postgres.js's own CONNECTION_CLOSED as soon as the connection closes,
    // before fn (and so the library) has seen any error; postgres.js then throws
    // "TypeError: Cannot read properties of null (reading 'write')" from connection.js on its own
    // timer, and sql.end() never resolves.
    skipLostConnection: 'postgres.js rejects sql.begin on close before fn settles, then crashes on its own timer',
    async open(url, maxConnections) {
      const sql = connect(url, { max: maxConnections })
      return {
        database: database(sql),
        withIdempotency: (tx, key, fn, options) => withIdempotency(tx, key, fn, options),
        insertLedgerRow: async (tx, scope, amount) => {
          await tx`insert into contract_ledger ${tx({ scope, amount })}`
        },
        notTransactions: async () => {
          const reserved = await sql.reserve()
          return [
            { label: 'sql', value: sql },
            { label: 'a reserved connection', value: reserved, release: async () => reserved.release() },
          ]
        },
        close: () => sql.end(),
      }
    },
  }
}
