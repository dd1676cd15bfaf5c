import { randomUUID } from 'node:crypto'
import pg from 'pg'
import { expect, it } from 'vitest'
import { database, withIdempotency } from '../../src/data/pg/index.ts'
import { useTestDatabase } from '../support/test-database.ts'
import { runDataLayerContract } from './contract.ts'
import { pgLayer } from './pg-layer.ts'

runDataLayerContract(pgLayer('node-postgres (pinned)', pg.Pool))

const own = useTestDatabase({ maxConnections: 1 })

it('prepares the hot statements once per connection, as named queries', async () => {
  const pool = new pg.Pool({ connectionString: own.url, max: 1 })
  try {
    for (let i = 0; i < 3; i++) await database(pool).transaction((client) => withIdempotency(client, randomUUID(), async () => i))
    const { rows } = await pool.query<{ name: string }>("select name from pg_prepared_statements where name like 'pg\\_idempotency\\_%' order by name")
    expect(rows.map((row) => row.name.replace(/_[0-9a-f]{16}$/, ''))).toEqual(['pg_idempotency_claim', 'pg_idempotency_complete_with_commit'])
  } finally {
    await pool.end()
  }
})

it('accepts a client whose BEGIN is sent but not yet answered (its status still says idle)', async () => {
  const pool = new pg.Pool({ connectionString: own.url, max: 1 })
  const client = await pool.connect()
  try {
    const begun = client.query('begin')
    const outcome = withIdempotency(client, randomUUID(), async () => 'in the transaction')
    await begun
    await expect(outcome).resolves.toMatchObject({ value: 'in the transaction', replayed: false })
    await client.query('commit')
  } finally {
    client.release()
    await pool.end()
  }
})
