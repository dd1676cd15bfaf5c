// The outbox as the application's role, which holds only what sql/grants.sql gives it.
import { randomBytes, randomUUID } from 'node:crypto'
import { sql, type Kysely } from 'kysely'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { createCustomer, emit, grantAccess } from '../src/index.ts'
import { createOutboxRelay, type OutboxEvent } from '../src/outbox/index.ts'
import { connect } from '../tools/databases.ts'
import { useTestDatabase } from './support/test-database.ts'

const database = useTestDatabase()
const role = `pgidem_outbox_${randomBytes(4).toString('hex')}`
const password = randomBytes(12).toString('hex')
let app: Kysely<any>

beforeAll(async () => {
  await sql`create role ${sql.id(role)} login password ${sql.lit(password)}`.execute(database.db)
  await grantAccess(database.db, { role })
  const url = new URL(database.url)
  url.username = role
  url.password = password
  app = connect(url.toString(), 4)
})

afterAll(async () => {
  await app?.destroy()
  await sql`drop owned by ${sql.id(role)}`.execute(database.db)
  await sql`drop role if exists ${sql.id(role)}`.execute(database.db)
})

it('emits for a customer and relays keyed and unkeyed events with only the granted privileges', async () => {
  const { customer } = await app.transaction().execute((tx) => createCustomer(tx, { clientId: 'grants', idempotentIdentifier: randomUUID() }))
  await app.transaction().execute(async (tx) => {
    await emit(tx, 'keyed', {}, { customerId: customer.customerId })
    await emit(tx, 'unkeyed', {})
  })
  const seen: OutboxEvent[] = []
  const relay = createOutboxRelay({ db: app, publishers: { '*': { publish: async (event) => void seen.push(event) } } })
  expect(await relay.runOnce()).toEqual({ delivered: 2, failed: 0, dead: 0 })
  expect(seen.map((event) => event.topic).toSorted()).toEqual(['keyed', 'unkeyed'])
})

it('says what is missing, instead of passing keyed events over for ever, when the role may not read the id sequence', async () => {
  await sql`revoke select on sequence idempotency.outbox_events_id_seq from ${sql.id(role)}`.execute(database.db)
  try {
    await app.transaction().execute((tx) => emit(tx, 'keyed', {}, { orderingKey: 'k' }))
    const relay = createOutboxRelay({ db: app, publishers: { '*': { publish: async () => {} } } })
    await expect(relay.runOnce()).rejects.toMatchObject({ code: 'IDEMPOTENCY_STORE_FAILED', message: expect.stringContaining('outbox_events_id_seq') })
  } finally {
    await grantAccess(database.db, { role })
  }
})
