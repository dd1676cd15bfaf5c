import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import pg from 'pg'
import { expect, it } from 'vitest'
import { withIdempotency } from '../src/index.ts'
import { connect } from '../tools/databases.ts'
import { useTestDatabase } from './support/test-database.ts'

const database = useTestDatabase()

/**
 * The trap: a plan cached while the key table was empty (and analyzed as empty) is a sequential
 * scan, and stays cached as the table grows. The claim function pins its lookup to the primary
 * key; auto_explain shows the plan the function really runs.
 */
it('looks keys up through the primary key, even with a plan cached while the table was empty', async () => {
  const client = new pg.Client({ connectionString: database.url })
  await client.connect()
  const db = connect(database.url, 1)
  try {
    await client.query('analyze idempotency.idempotency_keys') // relpages = reltuples = 0: the worst case
    // One session: warm the function's plan cache on the empty table, past the switch to a
    // generic plan (after five executions).
    for (let i = 0; i < 10; i++) {
      await client.query('begin')
      await client.query("select * from idempotency.claim_idempotency_key($1, 'k', '\\x00'::bytea, true, 1000)", [randomUUID()])
      await client.query('rollback')
    }
    await sql`
      insert into idempotency.idempotency_keys (scope, key, fingerprint, status, response, completed_at, expires_at)
      select 'plan', 'key-' || i, sha256(i::text::bytea), 'completed', '{}', now(), now() + interval '1 day'
        from generate_series(1, 100000) as i`.execute(db)

    const plans: string[] = []
    client.on('notice', (notice) => plans.push(notice.message ?? ''))
    await client.query('load \'auto_explain\'')
    await client.query("set auto_explain.log_min_duration = 0; set auto_explain.log_nested_statements = on; set auto_explain.log_level = 'notice'")
    await client.query('begin')
    const { rows } = await client.query("select outcome from idempotency.claim_idempotency_key('plan', 'key-77777', '\\x00'::bytea, true, 1000)")
    await client.query('rollback')
    expect(rows).toEqual([{ outcome: 'found' }])
    const lookup = plans.find((plan) => plan.includes('FROM idempotency_keys k WHERE'))
    expect(lookup).toContain('Index Scan using idempotency_keys_pkey')
    expect(lookup).not.toContain('Seq Scan')
  } finally {
    await client.end()
    await db.destroy()
  }
})

it('finds a key among 100,000 with the same index through withIdempotency', async () => {
  const key = 'key-4242'
  const outcome = await database.db.transaction().execute((tx) => withIdempotency(tx, { scope: 'plan', key }, async () => 'never', { onMismatch: 'replay' }))
  expect(outcome.replayed).toBe(true)
  const { rows } = await sql<{ 'QUERY PLAN': string }>`
    explain select * from idempotency.idempotency_keys where scope = ${'plan'} and key = ${key}`.execute(database.db)
  expect(rows.map((r) => r['QUERY PLAN']).join('\n')).toContain('idempotency_keys_pkey')
})
