import { spawn } from 'node:child_process'
import { createConnection } from 'node:net'
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { connect as natsConnect, type NatsConnection } from '@nats-io/transport-node'
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import { sql } from 'kysely'
import { PgBoss } from 'pg-boss'
import { createClient } from 'redis'
import { version as uuidVersion } from 'uuid'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createCustomer, deleteCustomerData, emit, IdempotencyErrorCode, withIdempotency, withInbox } from '../src/index.ts'
import { CUSTOMER_DELETION_QUEUE, requestCustomerDeletion } from '../src/jobs/index.ts'
import { createOutboxRelay, natsJetStreamPublisher, pgBossPublisher, redisStreamsPublisher, type OutboxEvent, type Publisher } from '../src/outbox/index.ts'
import { Latch } from './support/concurrency.ts'
import { useTestDatabase } from './support/test-database.ts'

const database = useTestDatabase({ maxConnections: 20 })
// The brokers run on every developer machine and in CI. Elsewhere their tests are skipped, with a
// line saying so; under CI=true they always run, so a missing broker fails the build.
const redisUp = process.env.CI === 'true' || (await reachable(6379))
const natsUp = process.env.CI === 'true' || (await reachable(4222))
if (!redisUp || !natsUp) console.warn(`outbox tests: skipping the ${!redisUp ? 'Redis' : ''}${!redisUp && !natsUp ? ' and ' : ''}${!natsUp ? 'NATS' : ''} tests: no broker on 127.0.0.1`)
const redis = createClient({ url: 'redis://127.0.0.1:6379' })
let nats: NatsConnection
let boss: PgBoss

beforeAll(async () => {
  if (redisUp) await redis.connect()
  if (natsUp) nats = await natsConnect({ servers: '127.0.0.1:4222' })
  boss = new PgBoss({ connectionString: database.url, max: 3 })
  boss.on('error', () => {})
  await boss.start()
  await boss.createQueue(CUSTOMER_DELETION_QUEUE)
  await sql`create table applied (event_id uuid primary key, customer_id uuid, seq int)`.execute(database.db)
})
afterAll(async () => {
  await boss?.stop({ graceful: false })
  await nats?.close()
  if (redisUp) await redis.quit().catch(() => {})
})

/** Delete whatever earlier tests left pending, so each test's relay sees only its own events. */
async function clearOutbox() {
  await sql`delete from idempotency.outbox_events`.execute(database.db)
}

/** A customer of its own for a test: events name existing customers only. */
async function newCustomer(): Promise<string> {
  const { customer } = await database.db.transaction().execute((tx) => createCustomer(tx, { clientId: 'outbox-tests', idempotentIdentifier: randomUUID() }))
  return customer.customerId
}

const pending = async () => (await sql<{ n: number }>`select count(*)::int as n from idempotency.outbox_events where status = 'pending'`.execute(database.db)).rows[0]!.n

/** The relay's first round that handles anything (an event in backoff is waited for, up to a minute). */
async function firstRound(relay: ReturnType<typeof createOutboxRelay>) {
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline) {
    const round = await relay.runOnce()
    if (round.delivered + round.failed + round.dead > 0) return round
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  throw new Error('the relay never saw the events')
}

/** Runs the relay until nothing is pending, or for a minute. */
async function drain(relay: ReturnType<typeof createOutboxRelay>) {
  const deadline = Date.now() + 60_000
  while ((await pending()) > 0 && Date.now() < deadline) {
    const round = await relay.runOnce()
    if (round.delivered + round.failed + round.dead === 0) await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

describe('emit', () => {
  it('writes the event with the transaction: a rollback leaves none, a commit exactly one', async () => {
    const topic = `t-${randomUUID()}`
    const rollback = new Error('rollback')
    await expect(
      database.db.transaction().execute(async (tx) => {
        await emit(tx, topic, { n: 1 })
        throw rollback
      }),
    ).rejects.toBe(rollback)
    await database.db.transaction().execute((tx) => emit(tx, topic, { n: 2 }))
    const { rows } = await sql<{ payload: unknown }>`select payload from idempotency.outbox_events where topic = ${topic}`.execute(database.db)
    expect(rows).toEqual([{ payload: { n: 2 } }])
  })

  it('derives ids from the idempotency key, carries its customer, emits nothing on replay, and new ids once the key expired', async () => {
    const key = randomUUID()
    const customerId = await newCustomer()
    const topic = `t-${randomUUID()}`
    const attempt = (amount: number) =>
      database.db.transaction().execute((tx) =>
        withIdempotency(tx, { key, customerId, request: { amount } }, async (tx) => [await emit(tx, topic, { amount }), await emit(tx, topic, { amount, step: 2 })]),
      )
    const first = await attempt(1)
    const replay = await attempt(1) // fn does not run: nothing is emitted
    expect(replay).toMatchObject({ replayed: true, value: first.value })
    expect(first.value.every((id) => uuidVersion(id) === 5)).toBe(true)
    // The same key after it expired is a new request: its events are new, with new ids.
    await sql`update idempotency.idempotency_keys set expires_at = now() - interval '1 second' where key = ${key}`.execute(database.db)
    const later = await attempt(2)
    expect(later.replayed).toBe(false)
    const { rows } = await sql<{ event_id: string; customer_id: string; ordering_key: string; payload: { amount: number } }>`
      select event_id, customer_id, ordering_key, payload from idempotency.outbox_events where topic = ${topic} order by id`.execute(database.db)
    expect(rows.map((r) => r.event_id)).toEqual([...first.value, ...later.value])
    expect(new Set(rows.map((r) => r.event_id)).size).toBe(4)
    expect(rows.every((r) => r.customer_id === customerId && r.ordering_key === customerId)).toBe(true)
  })

  it('refuses an event id used before instead of dropping the event', async () => {
    const eventId = randomUUID()
    await database.db.transaction().execute((tx) => emit(tx, 't', {}, { eventId }))
    await expect(database.db.transaction().execute((tx) => emit(tx, 't', {}, { eventId }))).rejects.toMatchObject({ code: IdempotencyErrorCode.EVENT_INVALID })
  })

  it("takes the customer of an outer call when a nested call names none", async () => {
    const customerId = await newCustomer()
    const topic = `t-${randomUUID()}`
    await database.db.transaction().execute((tx) =>
      withIdempotency(tx, { key: randomUUID(), customerId }, (tx) => withIdempotency(tx, randomUUID(), (tx) => emit(tx, topic, {}))),
    )
    const { rows } = await sql<{ customer_id: string }>`select customer_id from idempotency.outbox_events where topic = ${topic}`.execute(database.db)
    expect(rows).toEqual([{ customer_id: customerId }])
  })

  it('refuses a payload that is not JSON and a topic that breaks the rules', async () => {
    await expect(database.db.transaction().execute((tx) => emit(tx, 't', { n: 1n }))).rejects.toMatchObject({ code: IdempotencyErrorCode.EVENT_INVALID })
    await expect(database.db.transaction().execute((tx) => emit(tx, '', {}))).rejects.toMatchObject({ code: IdempotencyErrorCode.EVENT_INVALID })
  })
})

describe('the relay', () => {
  it('delivers to pg-boss queues in the same database, once per event id', async () => {
    await clearOutbox()
    const queue = `q-${randomUUID()}`
    await boss.createQueue(queue)
    const ids: string[] = []
    for (let i = 0; i < 5; i++) ids.push(await database.db.transaction().execute((tx) => emit(tx, queue, { i })))
    const relay = createOutboxRelay({ db: database.db, publishers: { '*': pgBossPublisher(boss) } })
    await drain(relay)
    // Publishing an event again (a redelivery) makes no second job.
    const event = { eventId: ids[0]!, topic: queue, orderingKey: null, customerId: null, payload: { i: 0 }, createdAt: new Date(), attempts: 0 }
    await pgBossPublisher(boss).publish(event)
    const { rows } = await sql<{ id: string }>`select id::text from pgboss.job where name = ${queue} order by id`.execute(database.db)
    expect(rows.map((r) => r.id).sort()).toEqual([...ids].sort())
  })

  it.skipIf(!redisUp)('delivers to a Redis stream in order per customer, many customers interleaved', async () => {
    await clearOutbox()
    const stream = `pgidem-test-${randomUUID()}`
    const customers = await Promise.all(Array.from({ length: 5 }, newCustomer))
    await Promise.all(
      customers.map(async (customerId) => {
        for (let seq = 0; seq < 20; seq++) await database.db.transaction().execute((tx) => emit(tx, 'deposit.accepted', { seq }, { customerId }))
      }),
    )
    const relay = createOutboxRelay({ db: database.db, publishers: { '*': redisStreamsPublisher(redis, { stream: () => stream }) } })
    await drain(relay)
    const entries = (await redis.xRange(stream, '-', '+')) ?? []
    expect(entries).toHaveLength(100)
    for (const customerId of customers) {
      const seqs = entries.filter((e) => e.message.customer_id === customerId).map((e) => (JSON.parse(e.message.payload!) as { seq: number }).seq)
      expect(seqs).toEqual(Array.from({ length: 20 }, (_, i) => i))
    }
    await redis.del(stream)
  })

  it.skipIf(!natsUp)('delivers to NATS JetStream, which drops a redelivered event id', async () => {
    await clearOutbox()
    const name = `pgidem_${randomUUID().replaceAll('-', '')}`
    const jsm = await jetstreamManager(nats)
    await jsm.streams.add({ name, subjects: [`${name}.>`] })
    try {
      const js = jetstream(nats)
      for (let i = 0; i < 10; i++) await database.db.transaction().execute((tx) => emit(tx, `${name}.deposit`, { i }))
      const publisher = natsJetStreamPublisher(js)
      const relay = createOutboxRelay({ db: database.db, publishers: { '*': publisher } })
      await drain(relay)
      const { rows } = await sql<OutboxEvent & { event_id: string }>`select event_id from idempotency.outbox_events where topic = ${`${name}.deposit`} limit 1`.execute(database.db)
      await publisher.publish({ eventId: rows[0]!.event_id, topic: `${name}.deposit`, orderingKey: null, customerId: null, payload: {}, createdAt: new Date(), attempts: 0 })
      expect((await jsm.streams.info(name)).state.messages).toBe(10)
    } finally {
      await jsm.streams.delete(name)
    }
  })

  it('keeps order per customer with two relays running side by side, delivering every event', async () => {
    await clearOutbox()
    const customers = await Promise.all(Array.from({ length: 6 }, newCustomer))
    await Promise.all(
      customers.map(async (customerId) => {
        for (let seq = 0; seq < 15; seq++) await database.db.transaction().execute((tx) => emit(tx, 'seq', { seq }, { customerId }))
      }),
    )
    const seen: Array<{ customerId: string | null; seq: number }> = []
    const publisher: Publisher = {
      // A small random pause, so the two relays' batches really interleave.
      publish: async (event) => {
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 3))
        seen.push({ customerId: event.customerId, seq: (event.payload as { seq: number }).seq })
      },
    }
    const relays = [0, 1].map(() => createOutboxRelay({ db: database.db, publishers: { '*': publisher }, batchSize: 4 }))
    await Promise.all(relays.map((relay) => drain(relay)))
    expect(seen).toHaveLength(90)
    for (const customerId of customers) {
      expect(seen.filter((e) => e.customerId === customerId).map((e) => e.seq)).toEqual(Array.from({ length: 15 }, (_, i) => i))
    }
  })

  it('retries with backoff, sets an event aside as dead after maxAttempts, and then lets its key move on', async () => {
    await clearOutbox()
    const customerId = await newCustomer()
    await database.db.transaction().execute((tx) => emit(tx, 'poison', { n: 1 }, { customerId }))
    await database.db.transaction().execute((tx) => emit(tx, 'fine', { n: 2 }, { customerId }))
    const delivered: string[] = []
    const publishers: Record<string, Publisher> = {
      poison: { publish: async () => Promise.reject(new Error('broker says no')) },
      fine: { publish: async (event) => void delivered.push(event.topic) },
    }
    const relay = createOutboxRelay({ db: database.db, publishers, maxAttempts: 3, backoff: 1, maxBackoff: 1 })
    const first = await firstRound(relay)
    expect(first).toEqual({ delivered: 0, failed: 1, dead: 0 })
    // The later event of the same customer waits behind the failing one.
    expect(delivered).toEqual([])
    const { rows } = await sql<{ attempts: number; later: boolean }>`
      select attempts, next_attempt_at > now() - interval '1 second' as later from idempotency.outbox_events where topic = 'poison'`.execute(database.db)
    expect(rows).toEqual([{ attempts: 1, later: true }])
    for (let i = 0; i < 20 && delivered.length === 0; i++) {
      await relay.runOnce()
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    const { rows: states } = await sql<{ topic: string; status: string; attempts: number }>`
      select topic, status, attempts from idempotency.outbox_events order by id`.execute(database.db)
    expect(states).toEqual([
      { topic: 'poison', status: 'dead', attempts: 3 },
      { topic: 'fine', status: 'delivered', attempts: 0 },
    ])
  })

  it('keeps the batch when onError throws or an error message holds a NUL, and times out a hung publish', async () => {
    await clearOutbox()
    // One transaction: the relay sees all three at once or none.
    await database.db.transaction().execute(async (tx) => {
      await emit(tx, 'ok', { n: 1 })
      await emit(tx, 'nul', { n: 2 })
      await emit(tx, 'hang', { n: 3 })
    })
    const relay = createOutboxRelay({
      db: database.db,
      publishTimeout: 50,
      publishers: {
        ok: { publish: async () => {} },
        nul: { publish: async () => Promise.reject(new Error('bad\u0000byte')) },
        hang: { publish: () => new Promise(() => {}) },
      },
      onError: () => {
        throw new Error('a broken error handler')
      },
    })
    expect(await firstRound(relay)).toEqual({ delivered: 1, failed: 2, dead: 0 })
    const { rows } = await sql<{ topic: string; status: string; last_error: string | null }>`
      select topic, status, last_error from idempotency.outbox_events order by id`.execute(database.db)
    expect(rows).toEqual([
      { topic: 'ok', status: 'delivered', last_error: null },
      { topic: 'nul', status: 'pending', last_error: 'badbyte' },
      { topic: 'hang', status: 'pending', last_error: 'publish took longer than 50 ms' },
    ])
  })

  it.skipIf(!redisUp)('loses nothing when the relay is killed between publish and acknowledgement; the inbox applies each event once', async () => {
    await clearOutbox()
    const stream = `pgidem-crash-${randomUUID()}`
    const customers = await Promise.all(Array.from({ length: 4 }, newCustomer))
    for (let seq = 0; seq < 50; seq++) {
      await database.db.transaction().execute((tx) => emit(tx, 'deposit.accepted', { seq }, { customerId: customers[seq % 4]! }))
    }
    // The child publishes 3 events of its batch, then hangs before it marks them delivered.
    const child = spawn(process.execPath, [new URL('./support/relay-child.ts', import.meta.url).pathname, database.url, stream, '3'], { stdio: ['ignore', 'pipe', 'inherit'] })
    await once(child.stdout!, 'data')
    child.kill('SIGKILL')
    await once(child, 'exit')
    expect(await redis.xLen(stream)).toBe(3)
    expect(await pending()).toBe(50)

    const relay = createOutboxRelay({ db: database.db, publishers: { '*': redisStreamsPublisher(redis, { stream: () => stream }) } })
    await drain(relay)
    const entries = (await redis.xRange(stream, '-', '+')) ?? []
    expect(entries.length).toBeGreaterThanOrEqual(50)
    // The consumer applies through the inbox: every event once, the redeliveries reported.
    let duplicates = 0
    for (const entry of entries) {
      const { duplicate } = await database.db.transaction().execute((tx) =>
        withInbox(tx, { source: stream, messageId: entry.message.event_id! }, async (tx) => {
          await sql`insert into applied (event_id, customer_id, seq) values (${entry.message.event_id}::uuid, ${entry.message.customer_id}::uuid, ${(JSON.parse(entry.message.payload!) as { seq: number }).seq})`.execute(tx)
          return null
        }),
      )
      if (duplicate) duplicates++
    }
    expect(duplicates).toBe(entries.length - 50)
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from applied where customer_id = any(${customers}::uuid[])`.execute(database.db)
    expect(rows[0]!.n).toBe(50)
    await redis.del(stream)
  })
})

describe('withInbox', () => {
  it('applies concurrent redeliveries of one message once', async () => {
    const messageId = randomUUID()
    const results = await Promise.all(
      Array.from({ length: 10 }, () =>
        database.db.transaction().execute((tx) =>
          withInbox(tx, { source: 'race', messageId }, async (tx) => {
            await sql`insert into applied (event_id) values (${messageId}::uuid)`.execute(tx)
            return 'applied'
          }),
        ),
      ),
    )
    expect(results.filter((r) => !r.duplicate)).toHaveLength(1)
    expect(results.every((r) => r.value === 'applied')).toBe(true)
  })
})

describe('customer deletion', () => {
  it('refuses new events for a customer being deleted, and deletes the event of a request in flight', async () => {
    const clientId = randomUUID()
    const { customer } = await database.db.transaction().execute((tx) => createCustomer(tx, { clientId, idempotentIdentifier: 'in-flight' }))
    const id = customer.customerId
    // A request that emits for the customer and is still open when the deletion finishes.
    const latch = new Latch()
    const request = database.db.transaction().execute(async (tx) => {
      await emit(tx, 'x', { name: 'Jane Doe' }, { customerId: id })
      await latch.hold()
    })
    await latch.entered
    await requestCustomerDeletion(database.db, boss, { clientId, customerId: id })
    await expect(database.db.transaction().execute((tx) => emit(tx, 'x', {}, { customerId: id }))).rejects.toMatchObject({
      code: IdempotencyErrorCode.CUSTOMER_DELETING,
    })
    // The deletion's final transaction must wait for the request's share lock on the customer
    // row, so it cannot finish before the request commits, and then deletes its event too.
    const deletion = deleteCustomerData(database.db, id)
    latch.release()
    await request
    expect((await deletion).deletedRows['idempotency.outbox_events']).toBe(1)
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from idempotency.outbox_events where customer_id = ${id}::uuid`.execute(database.db)
    expect(rows[0]!.n).toBe(0)
  })


  it('refuses an event naming a customer that never existed or whose deletion has finished, even in a request that found it active', async () => {
    const neverExisted = randomUUID()
    const refused = database.db.transaction().execute((tx) => emit(tx, 'x', {}, { customerId: neverExisted }))
    await expect(refused).rejects.toMatchObject({ code: IdempotencyErrorCode.CUSTOMER_NOT_FOUND, httpStatus: 404, retryable: false })

    const clientId = randomUUID()
    const { customer } = await database.db.transaction().execute((tx) => createCustomer(tx, { clientId, idempotentIdentifier: 'finished' }))
    const id = customer.customerId
    // A request made on the customer's behalf while it was active, which emits only after the
    // whole deletion has run. (Its key does not name the customer: a key that does holds the
    // customer row, and the deletion would wait for it.)
    const latch = new Latch()
    const request = database.db.transaction().execute((tx) =>
      withIdempotency(tx, { key: randomUUID() }, async (tx) => {
        await latch.hold()
        return emit(tx, 'late', { name: 'Jane Doe' }, { customerId: id })
      }),
    )
    await latch.entered
    await requestCustomerDeletion(database.db, boss, { clientId, customerId: id })
    expect((await deleteCustomerData(database.db, id)).state).toBe('done')
    latch.release()
    await expect(request).rejects.toMatchObject({ code: IdempotencyErrorCode.CUSTOMER_NOT_FOUND, retryable: false })
    await expect(database.db.transaction().execute((tx) => emit(tx, 'x', {}, { customerId: id }))).rejects.toMatchObject({
      code: IdempotencyErrorCode.CUSTOMER_NOT_FOUND,
    })
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from idempotency.outbox_events where customer_id = any(${[id, neverExisted]}::uuid[])`.execute(database.db)
    expect(rows[0]!.n).toBe(0)
    // The table itself refuses it too, whoever writes.
    const direct = sql`insert into idempotency.outbox_events (event_id, topic, customer_id, payload) values (${randomUUID()}::uuid, 'x', ${id}::uuid, '{}')`.execute(database.db)
    await expect(direct).rejects.toMatchObject({ code: '23503' })
  })

  it("refuses an event that arrives while the deletion's final transaction runs, once that transaction has committed", async () => {
    const clientId = randomUUID()
    const { customer } = await database.db.transaction().execute((tx) => createCustomer(tx, { clientId, idempotentIdentifier: 'final' }))
    const id = customer.customerId
    // A registered table whose row another transaction holds: the final transaction, which has
    // locked the customer row first, waits on it.
    await sql`create table held_rows (customer_id uuid not null)`.execute(database.db)
    await sql`insert into held_rows values (${id}::uuid)`.execute(database.db)
    const holder = new Latch()
    const holding = database.db.transaction().execute(async (tx) => {
      await sql`select 1 from held_rows for update`.execute(tx)
      await holder.hold()
    })
    await holder.entered
    await requestCustomerDeletion(database.db, boss, { clientId, customerId: id })
    const deletion = deleteCustomerData(database.db, id, { tables: [{ schema: 'public', table: 'held_rows', column: 'customer_id' }] })
    const emitting = new Latch()
    let request: Promise<string> | undefined
    try {
      await waitingOn('held_rows')
      request = database.db.transaction().execute(async (tx) => {
        await emitting.hold()
        return emit(tx, 'during-final', {}, { customerId: id })
      })
      // It rejects once the deletion commits, possibly before the expectation below is attached.
      request.catch(() => undefined)
      await emitting.entered
      emitting.release()
      // The emit waits on the customer row the final transaction holds.
      await waitingOn('outbox_events')
    } finally {
      holder.release()
    }
    await holding
    expect((await deletion).state).toBe('done')
    await expect(request).rejects.toMatchObject({ code: IdempotencyErrorCode.CUSTOMER_NOT_FOUND })
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from idempotency.outbox_events where customer_id = ${id}::uuid`.execute(database.db)
    expect(rows[0]!.n).toBe(0)
    await sql`drop table held_rows`.execute(database.db)
  })

  it("removes the customer's events", async () => {
    const clientId = randomUUID()
    const { customer } = await database.db.transaction().execute((tx) => createCustomer(tx, { clientId, idempotentIdentifier: 'evented' }))
    for (let i = 0; i < 3; i++) await database.db.transaction().execute((tx) => emit(tx, 'x', { i }, { customerId: customer.customerId }))
    await requestCustomerDeletion(database.db, boss, { clientId, customerId: customer.customerId })
    const done = await deleteCustomerData(database.db, customer.customerId)
    expect(done.deletedRows['idempotency.outbox_events']).toBe(3)
  })
})

/** Polls until a statement of this database that mentions `table` waits on a lock (or fails after 30 s). */
async function waitingOn(table: string) {
  const deadline = Date.now() + 30_000
  for (;;) {
    const { rows } = await sql<{ n: number }>`
      select count(*)::int as n from pg_stat_activity
       where datname = current_database() and wait_event_type = 'Lock' and strpos(query, ${table}) > 0`.execute(database.db)
    if (rows[0]!.n > 0) return
    if (Date.now() > deadline) throw new Error(`no statement on ${table} ever waited on a lock`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

function reachable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: '127.0.0.1' })
    socket.once('connect', () => (socket.destroy(), resolve(true)))
    socket.once('error', () => resolve(false))
    socket.setTimeout(1000, () => (socket.destroy(), resolve(false)))
  })
}
