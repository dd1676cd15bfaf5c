// Migration 0006 on a database that ran the earlier ones: events a finished deletion let slip in
// are deleted, other events stay, and from then on the table refuses an event with no customer.
import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { PgBoss } from 'pg-boss'
import { afterAll, expect, it } from 'vitest'
import { createCustomer, deleteCustomerData, emit, IdempotencyErrorCode, migrate } from '../src/index.ts'
import { CUSTOMER_DELETION_QUEUE, requestCustomerDeletion } from '../src/jobs/index.ts'
import { loadMigrations, renderSql } from '../src/migrations/sql-files.ts'
import { useTestDatabase } from './support/test-database.ts'

const database = useTestDatabase({ migrated: false })
let boss: PgBoss | undefined
afterAll(async () => {
  await boss?.stop({ graceful: false })
})

it('0006 deletes the events of customers whose deletion finished, keeps the others, and refuses new ones without a customer', async () => {
  const schema = 'idempotency'
  for (const file of (await loadMigrations()).filter((f) => f.version < 6)) {
    await database.db.transaction().execute((tx) => sql.raw(renderSql(file.text, { schema })).execute(tx))
  }
  boss = new PgBoss({ connectionString: database.url, max: 2 })
  boss.on('error', () => {})
  await boss.start()
  await boss.createQueue(CUSTOMER_DELETION_QUEUE)

  const clientId = randomUUID()
  const create = (identifier: string) => database.db.transaction().execute(async (tx) => (await createCustomer(tx, { clientId, idempotentIdentifier: identifier })).customer.customerId)
  const deleted = await create('deleted')
  const kept = await create('kept')
  const neverExisted = randomUUID()
  await requestCustomerDeletion(database.db, boss, { clientId, customerId: deleted })
  expect((await deleteCustomerData(database.db, deleted)).state).toBe('done')
  // What the old emit let in: an event for the customer after its deletion finished, and one for
  // an id that was never a customer.
  const insert = (customerId: string) =>
    sql`insert into idempotency.outbox_events (event_id, topic, customer_id, payload) values (${randomUUID()}::uuid, 'old', ${customerId}::uuid, '{}')`.execute(database.db)
  await insert(deleted)
  await insert(neverExisted)
  await database.db.transaction().execute((tx) => emit(tx, 'old', {}, { customerId: kept }))

  expect(await migrate(database.db)).toMatchObject({ applied: ['0006_outbox_customer_and_order'] })
  const { rows } = await sql<{ customer_id: string }>`select customer_id from idempotency.outbox_events order by id`.execute(database.db)
  expect(rows.map((row) => row.customer_id)).toEqual([neverExisted, kept])
  await expect(database.db.transaction().execute((tx) => emit(tx, 'new', {}, { customerId: neverExisted }))).rejects.toMatchObject({
    code: IdempotencyErrorCode.CUSTOMER_NOT_FOUND,
  })
  await expect(insert(deleted)).rejects.toMatchObject({ code: '23503' })
  // The relay still updates the old rows the key was not checked against.
  await sql`update idempotency.outbox_events set status = 'delivered', delivered_at = now()`.execute(database.db)
})
