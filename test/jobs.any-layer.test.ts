// The pg-boss jobs with a data layer's real adapter as `db`: a customer's deletion requested
// (in a transaction of its own, or joined to the caller's) and carried out by the worker, and the
// sweep, on Knex and on Prisma. pg-boss runs on the same database.
import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { PgBoss } from 'pg-boss'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createCustomerIn, getCustomerDeletion } from '../src/index.ts'
import { registerJobs, requestCustomerDeletion, SWEEP_QUEUE } from '../src/jobs/index.ts'
import type { OpenLayer } from './data-layers/layer-under-test.ts'
import { knexReal, prismaReal } from './data-layers/real-layers.ts'
import { useTestDatabase } from './support/test-database.ts'
import { until } from './support/until.ts'

const test = useTestDatabase({ maxConnections: 4 })

describe.each([knexReal, prismaReal])('registerJobs on $name', (layer) => {
  let open: OpenLayer<any>
  let boss: PgBoss
  beforeAll(async () => {
    open = await layer.open(test.url, 4)
    boss = new PgBoss({ connectionString: test.url, schema: `pgboss_${layer.name.toLowerCase()}`, max: 3 })
    boss.on('error', () => {})
    await boss.start()
    await registerJobs(boss, { db: open.database, sweep: { batchSize: 100 }, deletion: { batchSize: 20 }, pollingIntervalSeconds: 0.5 })
  })
  afterAll(async () => {
    await boss?.stop({ graceful: false })
    await open?.close()
  })

  it('deletes a customer end to end: requested through the layer, done by the worker, the identifier free again', async () => {
    const clientId = randomUUID()
    const create = () => open.database.transaction((tx) => createCustomerIn(open.database.session(tx), { clientId, idempotentIdentifier: 'goner' }))
    const { customer } = await create()
    for (let i = 0; i < 30; i++) {
      await open.database.transaction((tx) => open.withIdempotency(tx, { key: `k${i}`, customerId: customer.customerId }, async () => i))
    }
    // Joined to the caller's transaction, a rollback leaves neither the mark nor the job.
    const rollback = new Error('roll back')
    await expect(
      open.database.transaction(async (tx) => {
        await requestCustomerDeletion(open.database.session(tx), boss, { clientId, customerId: customer.customerId })
        throw rollback
      }),
    ).rejects.toBe(rollback)
    expect(await getCustomerDeletion(open.database, customer.customerId)).toBeUndefined()

    expect(await requestCustomerDeletion(open.database, boss, { clientId, idempotentIdentifier: 'goner' })).toEqual({ customerId: customer.customerId, enqueued: true })
    const done = await until(async () => {
      const progress = await getCustomerDeletion(open.database, customer.customerId)
      return progress?.state === 'done' ? progress : undefined
    })
    expect(done.deletedRows).toEqual({ 'idempotency.idempotency_keys': 30, 'idempotency.customers': 1 })
    expect(done.finishedAt).toBeInstanceOf(Date)
    expect((await create()).created).toBe(true)
  })

  it('runs the sweep as a job that reports the keys it removed and the events it pruned', async () => {
    const scope = randomUUID()
    await sql`
      insert into idempotency.idempotency_keys (scope, key, fingerprint, status, response, completed_at, expires_at)
      select ${scope}, 'k' || i, sha256(i::text::bytea), 'completed', '{}', now(), now() - interval '1 minute'
        from generate_series(1, 250) i`.execute(test.db)
    const jobId = await boss.send(SWEEP_QUEUE)
    const job = await until(async () => {
      const found = await boss.getJobById(SWEEP_QUEUE, jobId!)
      return found?.state === 'completed' ? found : undefined
    })
    expect((job.output as { deleted: number }).deleted).toBeGreaterThanOrEqual(250)
    expect(typeof (job.output as { prunedEvents: unknown }).prunedEvents).toBe('number')
    const { rows } = await sql<{ n: string }>`select count(*)::text as n from idempotency.idempotency_keys where scope = ${scope}`.execute(test.db)
    expect(rows[0]!.n).toBe('0')
  })
})
