// The outbox as the application's role, which holds only what sql/grants.sql gives it.
import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { expect, it } from 'vitest'
import { createCustomer, emit, grantAccess } from '../src/index.ts'
import { createOutboxRelay, type OutboxEvent } from '../src/outbox/index.ts'
import { useAppRole } from './support/app-role.ts'
import { useTestDatabase } from './support/test-database.ts'

const database = useTestDatabase()
const app = useAppRole(database)

it('emits for a customer and relays keyed and unkeyed events with only the granted privileges', async () => {
  const { customer } = await app.db.transaction().execute((tx) => createCustomer(tx, { clientId: 'grants', idempotentIdentifier: randomUUID() }))
  await app.db.transaction().execute(async (tx) => {
    await emit(tx, 'keyed', {}, { customerId: customer.customerId })
    await emit(tx, 'unkeyed', {})
  })
  const seen: OutboxEvent[] = []
  const relay = createOutboxRelay({ db: app.db, publishers: { '*': { publish: async (event) => void seen.push(event) } } })
  expect(await relay.runOnce()).toEqual({ delivered: 2, failed: 0, dead: 0 })
  expect(seen.map((event) => event.topic).toSorted()).toEqual(['keyed', 'unkeyed'])
})

it('says what is missing, instead of passing keyed events over for ever, when the role may not read the id sequence', async () => {
  await sql`revoke select on sequence idempotency.outbox_events_id_seq from ${sql.id(app.role)}`.execute(database.db)
  try {
    await app.db.transaction().execute((tx) => emit(tx, 'keyed', {}, { orderingKey: 'k' }))
    const relay = createOutboxRelay({ db: app.db, publishers: { '*': { publish: async () => {} } } })
    await expect(relay.runOnce()).rejects.toMatchObject({ code: 'IDEMPOTENCY_STORE_FAILED', message: expect.stringContaining('outbox_events_id_seq') })
  } finally {
    await grantAccess(database.db, { role: app.role })
  }
})
