import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { PgBoss } from 'pg-boss'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createCustomer, getCustomerDeletion, sweepExpiredKeys, withIdempotency } from '../src/index.ts'
import { registerJobs, requestCustomerDeletion, SWEEP_QUEUE } from '../src/jobs/index.ts'
import { Latch } from './support/concurrency.ts'
import { useTestDatabase } from './support/test-database.ts'
import { until } from './support/until.ts'

const database = useTestDatabase({ maxConnections: 20 })

async function expiredKeys(count: number, scope = 'sweep') {
  await sql`
    insert into idempotency.idempotency_keys (scope, key, fingerprint, status, response, completed_at, expires_at)
    select ${scope}, 'k' || i || '-' || ${randomUUID()}, sha256(i::text::bytea), 'completed', '{}', now(), now() - interval '1 minute'
      from generate_series(1, ${count}) i`.execute(database.db)
}

async function keysIn(scope: string): Promise<number> {
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from idempotency.idempotency_keys where scope = ${scope}`.execute(database.db)
  return rows[0]!.n
}

describe('sweepExpiredKeys', () => {
  it('deletes expired keys in batches and leaves live ones', async () => {
    const scope = randomUUID()
    await expiredKeys(2_345, scope)
    await database.db.transaction().execute((tx) => withIdempotency(tx, { scope, key: 'live' }, async () => 1))
    expect(await sweepExpiredKeys(database.db, { batchSize: 500 })).toBeGreaterThanOrEqual(2_345)
    expect(await keysIn(scope)).toBe(1)
  })

  it('skips a key another transaction holds instead of waiting for it, and never blocks a live claim', async () => {
    const scope = randomUUID()
    await expiredKeys(10, scope)
    // A claim in progress holds one expired row (it is replacing it).
    const latch = new Latch()
    const holder = database.db.transaction().execute(async (tx) => {
      await sql`select 1 from idempotency.idempotency_keys where scope = ${scope} and key like 'k1-%' for update`.execute(tx)
      await latch.hold()
    })
    await latch.entered
    expect(await sweepExpiredKeys(database.db, { batchSize: 3 })).toBeGreaterThanOrEqual(9)
    expect(await keysIn(scope)).toBe(1)
    latch.release()
    await holder
    expect(await sweepExpiredKeys(database.db)).toBeGreaterThanOrEqual(1)
    expect(await keysIn(scope)).toBe(0)
  })
})

describe('registerJobs on pg-boss', () => {
  let boss: PgBoss
  beforeAll(async () => {
    boss = new PgBoss({ connectionString: database.url, schema: 'pgboss', max: 4 })
    boss.on('error', () => {})
    await boss.start()
    await registerJobs(boss, { db: database.db, sweep: { cron: '*/10 * * * *', batchSize: 250 }, deletion: { batchSize: 50 } })
  })
  afterAll(async () => {
    await boss?.stop({ graceful: false })
  })

  it('schedules the sweep and runs it as a job that reports how many keys it removed', async () => {
    const schedules = await boss.getSchedules()
    expect(schedules).toEqual([expect.objectContaining({ name: SWEEP_QUEUE, cron: '*/10 * * * *' })])
    const scope = randomUUID()
    await expiredKeys(1_000, scope)
    const jobId = await boss.send(SWEEP_QUEUE)
    const job = await until(async () => {
      const found = await boss.getJobById(SWEEP_QUEUE, jobId!)
      return found?.state === 'completed' ? found : undefined
    })
    expect((job.output as { deleted: number }).deleted).toBeGreaterThanOrEqual(1_000)
    expect(await keysIn(scope)).toBe(0)
  })

  it('prunes delivered events older than the retention, keeping pending, dead and recent ones', async () => {
    const topic = `t-${randomUUID()}`
    await sql`
      insert into idempotency.outbox_events (event_id, topic, payload, status, delivered_at)
      select gen_random_uuid(), ${topic}, '{}', s, d
        from (values ('delivered', now() - interval '8 days'), ('delivered', now() - interval '8 days'),
                     ('delivered', now() - interval '1 day'), ('pending', null), ('dead', null)) v(s, d)`.execute(database.db)
    const jobId = await boss.send(SWEEP_QUEUE)
    const job = await until(async () => {
      const found = await boss.getJobById(SWEEP_QUEUE, jobId!)
      return found?.state === 'completed' ? found : undefined
    })
    expect((job.output as { prunedEvents: number }).prunedEvents).toBeGreaterThanOrEqual(2)
    const { rows } = await sql<{ status: string }>`select status from idempotency.outbox_events where topic = ${topic} order by status`.execute(database.db)
    expect(rows.map((r) => r.status)).toEqual(['dead', 'delivered', 'pending'])
  })

  it('deletes a customer end to end: request, worker, progress, identifier free again', async () => {
    const clientId = randomUUID()
    const { customer } = await database.db.transaction().execute((tx) => createCustomer(tx, { clientId, idempotentIdentifier: 'goner' }))
    for (let i = 0; i < 120; i++) {
      await database.db.transaction().execute((tx) => withIdempotency(tx, { key: `k${i}`, customerId: customer.customerId }, async () => i))
    }
    await requestCustomerDeletion(database.db, boss, { clientId, idempotentIdentifier: 'goner' })
    const done = await until(async () => {
      const progress = await getCustomerDeletion(database.db, customer.customerId)
      return progress?.state === 'done' ? progress : undefined
    })
    expect(done.deletedRows).toEqual({ 'idempotency.idempotency_keys': 120, 'idempotency.customers': 1 })
    const again = await database.db.transaction().execute((tx) => createCustomer(tx, { clientId, idempotentIdentifier: 'goner' }))
    expect(again.created).toBe(true)
  })
})
