// The outbox, the inbox, the relay and the deletion request through a data layer the library does
// not know: a minimal IdempotencyDatabase over node-postgres whose pool returns every column as
// a string (timestamptz, int8, jsonb alike). What they hand back must still be typed as declared.
import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import pg from 'pg'
import type { PgBoss } from 'pg-boss'
import { version as uuidVersion } from 'uuid'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { createCustomer, emit, emitIn, IdempotencyErrorCode, withIdempotencyIn, withInboxIn, type IdempotencyDatabase } from '../src/index.ts'
import { inTransaction } from '../src/data/database.ts'
import { CUSTOMER_DELETION_QUEUE, requestCustomerDeletion } from '../src/jobs/index.ts'
import { createOutboxRelay, pruneDeliveredEvents, type OutboxEvent } from '../src/outbox/index.ts'
import { pgDatabase, textOnlyPool } from './support/pg-database.ts'
import { useTestDatabase } from './support/test-database.ts'
import { startDeletionBoss, stopBoss } from './support/deletion-boss.ts'

const database = useTestDatabase({ maxConnections: 10 })
let pool: pg.Pool
let plain: IdempotencyDatabase<pg.PoolClient>
let boss: PgBoss

beforeAll(async () => {
  pool = textOnlyPool(database.url, 10)
  plain = pgDatabase(pool)
  await sql`create table applied (message_id text primary key)`.execute(database.db)
  boss = await startDeletionBoss(database.url, 3)
})
afterAll(async () => {
  await stopBoss(boss)
  await pool?.end()
})
beforeEach(async () => {
  await sql`delete from idempotency.outbox_events`.execute(database.db)
})

async function newCustomer() {
  const clientId = 'any-layer'
  const idempotentIdentifier = randomUUID()
  const { customer } = await database.db.transaction().execute((tx) => createCustomer(tx, { clientId, idempotentIdentifier }))
  return { clientId, idempotentIdentifier, customerId: customer.customerId }
}

const eventsOf = async (topic: string) =>
  (
    await sql<{ event_id: string; customer_id: string | null; ordering_key: string | null }>`
      select event_id, customer_id, ordering_key from idempotency.outbox_events where topic = ${topic}`.execute(database.db)
  ).rows

describe('emitIn and withInboxIn on another data layer', () => {
  it('writes one event with the claim, derives its id from the key, and emits nothing on a replay', async () => {
    const { customerId } = await newCustomer()
    const topic = `deposit-${randomUUID()}`
    const key = { scope: 'any-layer', key: randomUUID(), customerId, request: { amount: 5 } }
    const deposit = () => inTransaction(plain, (session) => withIdempotencyIn(session, key, async () => ({ eventId: await emitIn(session, topic, { amount: 5 }) })))
    const first = await deposit()
    const again = await deposit()
    expect(first.replayed).toBe(false)
    expect(again.replayed).toBe(true)
    expect(again.value.eventId).toBe(first.value.eventId)
    expect(uuidVersion(first.value.eventId)).toBe(5)
    expect(first.firstSeenAt).toBeInstanceOf(Date)
    expect(await eventsOf(topic)).toEqual([{ event_id: first.value.eventId, customer_id: customerId, ordering_key: customerId }])
  })

  it('leaves no event when the transaction rolls back, and refuses a customer being deleted', async () => {
    const { clientId, customerId } = await newCustomer()
    const topic = `rolled-${randomUUID()}`
    const rollback = new Error('roll back')
    await expect(
      inTransaction(plain, async (session) => {
        await emitIn(session, topic, {}, { customerId })
        throw rollback
      }),
    ).rejects.toBe(rollback)
    expect(await eventsOf(topic)).toEqual([])
    await requestCustomerDeletion(plain, boss, { clientId, customerId })
    await expect(inTransaction(plain, (session) => emitIn(session, topic, {}, { customerId }))).rejects.toMatchObject({ code: IdempotencyErrorCode.CUSTOMER_DELETING })
  })

  it('applies a message once; a redelivery is a duplicate with the first value', async () => {
    const message = { source: 'any-layer', messageId: randomUUID() }
    const apply = () =>
      inTransaction(plain, (session) =>
        withInboxIn(session, message, async (client) => {
          await client.query('insert into applied (message_id) values ($1::text)', [message.messageId])
          return { applied: message.messageId }
        }),
      )
    expect(await apply()).toEqual({ value: { applied: message.messageId }, duplicate: false })
    expect(await apply()).toEqual({ value: { applied: message.messageId }, duplicate: true })
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from applied where message_id = ${message.messageId}`.execute(database.db)
    expect(rows[0]!.n).toBe(1)
  })

  it('kysely emit refuses the Kysely instance (not a transaction) before any statement', async () => {
    await expect(emit(database.db as never, 'refused', {})).rejects.toMatchObject({ code: IdempotencyErrorCode.USAGE })
    expect(await eventsOf('refused')).toEqual([])
  })
})

describe('the relay on another data layer', () => {
  it('hands publishers typed events (Date, number, parsed JSON) although the pool parses nothing', async () => {
    const { customerId } = await newCustomer()
    const ids = await inTransaction(plain, async (session) => [
      await emitIn(session, 'keyed', { n: 1, nested: { big: '9007199254740993' } }, { customerId }),
      await emitIn(session, 'keyed', { n: 2 }, { customerId }),
      await emitIn(session, 'unkeyed', [1, 'two']),
    ])
    const seen: OutboxEvent[] = []
    const relay = createOutboxRelay({ db: plain, publishers: { '*': { publish: async (event) => void seen.push(event) } } })
    expect(await relay.runOnce()).toEqual({ delivered: 3, failed: 0, dead: 0 })
    const { rows } = await sql<{ ms: string }>`
      select (extract(epoch from date_trunc('milliseconds', created_at)) * 1000)::int8::text as ms
        from idempotency.outbox_events where event_id = ${ids[0]!}::uuid`.execute(database.db)
    expect(seen.map((event) => event.eventId)).toEqual(ids)
    expect(seen[0]).toEqual({
      eventId: ids[0],
      topic: 'keyed',
      orderingKey: customerId,
      customerId,
      payload: { n: 1, nested: { big: '9007199254740993' } },
      createdAt: new Date(Number(rows[0]!.ms)),
      attempts: 0,
    })
    expect(seen[2]).toMatchObject({ orderingKey: null, customerId: null, payload: [1, 'two'] })
    for (const event of seen) {
      expect(event.createdAt).toBeInstanceOf(Date)
      expect(Number.isNaN(event.createdAt.getTime())).toBe(false)
      expect(typeof event.attempts).toBe('number')
    }
  })

  it('counts attempts as a number across a failed delivery, and prunes through the same database', async () => {
    await inTransaction(plain, (session) => emitIn(session, 'flaky', {}, { orderingKey: 'flaky' }))
    const attempts: unknown[] = []
    const relay = createOutboxRelay({
      db: plain,
      backoff: 1,
      maxBackoff: 1,
      publishers: {
        '*': {
          publish: async (event) => {
            attempts.push(event.attempts)
            if (event.attempts === 0) throw new Error('broker down')
          },
        },
      },
    })
    expect(await relay.runOnce()).toEqual({ delivered: 0, failed: 1, dead: 0 })
    const deadline = Date.now() + 60_000
    while (attempts.length < 2 && Date.now() < deadline) {
      await relay.runOnce()
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    expect(attempts).toEqual([0, 1])
    await sql`update idempotency.outbox_events set delivered_at = now() - interval '1 day' where status = 'delivered'`.execute(database.db)
    const pruned = await pruneDeliveredEvents(plain, { olderThan: '1h' })
    expect(pruned).toBe(1)
    expect(await pruneDeliveredEvents(plain, { olderThan: '1h' })).toBe(0)
  })

  it('reports a failed round of start() to onRoundError and keeps going, even when onRoundError throws', async () => {
    const errors: unknown[] = []
    let twice!: () => void
    const reported = new Promise<void>((resolve) => (twice = resolve))
    const relay = createOutboxRelay({
      db: plain,
      schema: 'no_such_schema',
      pollInterval: 1,
      publishers: { '*': { publish: async () => {} } },
      onRoundError: (error) => {
        errors.push(error)
        if (errors.length === 2) twice()
        throw new Error('the observer fails too')
      },
    })
    relay.start()
    await reported
    await relay.stop()
    expect(errors[0]).toMatchObject({ code: '42P01' })
  })
})

describe('requestCustomerDeletion on another data layer', () => {
  const queued = async (customerId: string) =>
    (await sql<{ n: number }>`select count(*)::int as n from pgboss.job where name = ${CUSTOMER_DELETION_QUEUE} and data->>'customerId' = ${customerId}`.execute(database.db))
      .rows[0]!.n

  it('marks and enqueues in a transaction of its own; a repeat enqueues nothing', async () => {
    const { clientId, idempotentIdentifier, customerId } = await newCustomer()
    expect(await requestCustomerDeletion(plain, boss, { clientId, idempotentIdentifier })).toEqual({ customerId, enqueued: true })
    expect(await requestCustomerDeletion(plain, boss, { clientId, customerId })).toEqual({ customerId, enqueued: false })
    expect(await queued(customerId)).toBe(1)
  })

  it("joins the caller's transaction given its session: a rollback leaves neither mark nor job", async () => {
    const { clientId, customerId } = await newCustomer()
    const rollback = new Error('roll back')
    await expect(
      inTransaction(plain, async (session) => {
        expect(await requestCustomerDeletion(session, boss, { clientId, customerId })).toEqual({ customerId, enqueued: true })
        expect(await queued(customerId)).toBe(0)
        throw rollback
      }),
    ).rejects.toBe(rollback)
    expect(await queued(customerId)).toBe(0)
    const { rows } = await sql<{ status: string }>`select status from idempotency.customers where customer_id = ${customerId}::uuid`.execute(database.db)
    expect(rows).toEqual([{ status: 'active' }])
  })
})
