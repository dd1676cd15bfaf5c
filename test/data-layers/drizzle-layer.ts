// Drizzle under the contract: its node-postgres and postgres.js drivers, for any copy of
// drizzle-orm (the pinned one and the lowest supported).
import { sql } from 'drizzle-orm'
import type { PgDatabase } from 'drizzle-orm/pg-core'
import { database, withIdempotency, type DrizzleTransaction } from '../../src/data/drizzle/index.ts'
import type { LayerUnderTest } from './layer-under-test.ts'

export function drizzleLayer(
  name: string,
  connect: (url: string, max: number) => { db: PgDatabase<any, any, any>; close(): Promise<void> },
  sqlTag: typeof sql = sql,
  skipLostConnection?: string,
): LayerUnderTest<DrizzleTransaction> {
  return {
    name,
    ...(skipLostConnection === undefined ? {} : { skipLostConnection }),
    async open(url, maxConnections) {
      const { db, close } = connect(url, maxConnections)
      return {
        database: database(db),
        withIdempotency: (tx, key, fn, options) => withIdempotency(tx, key, fn, options),
        insertLedgerRow: async (tx, scope, amount) => {
          await tx.execute(sqlTag`insert into contract_ledger (scope, amount) values (${scope}, ${amount})`)
        },
        notTransactions: async () => [
          { label: 'the Drizzle database', value: db },
          { label: 'an object', value: {} },
        ],
        close,
      }
    },
  }
}
