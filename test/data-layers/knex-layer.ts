// Knex under the contract, for any copy of knex (the pinned one and the lowest supported).
import type { Knex } from 'knex'
import { database, withIdempotency } from '../../src/data/knex/index.ts'
import type { LayerUnderTest } from './layer-under-test.ts'

export function knexLayer(name: string, makeKnex: (config: Knex.Config) => Knex): LayerUnderTest<Knex.Transaction> {
  return {
    name,
    async open(url, maxConnections) {
      const knex = makeKnex({ client: 'pg', connection: url, pool: { min: 0, max: maxConnections } })
      return {
        database: database(knex),
        withIdempotency: (trx, key, fn, options) => withIdempotency(trx, key, fn, options),
        insertLedgerRow: async (trx, scope, amount) => {
          await trx('contract_ledger').insert({ scope, amount })
        },
        notTransactions: async () => {
          const finished = await knex.transaction()
          await finished.commit()
          return [
            { label: 'the Knex instance', value: knex },
            { label: 'a committed transaction', value: finished },
            { label: 'null', value: null },
          ]
        },
        close: () => knex.destroy(),
      }
    },
  }
}
