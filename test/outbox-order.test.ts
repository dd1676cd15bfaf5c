// The relay's promises about order and progress: write order within a key even when an earlier
// event's transaction commits late, no key's backlog blocking the others, a backlog delivered
// several events per round, and a dead event redriven by the docs' statement at once.
import { readFileSync } from 'node:fs'
import { randomUUID } from 'node:crypto'
import { sql, type Transaction } from 'kysely'
import { beforeEach, describe, expect, it } from 'vitest'
import { createCustomer, defineDatabase, emit, kyselyDatabase, withIdempotency } from '../src/index.ts'
import { createOutboxRelay, type OutboxEvent, type Publisher } from '../src/outbox/index.ts'
import { KEYS_LOCKED_ONE_BY_ONE } from '../src/outbox/ordering-locks.ts'
import { Latch } from './support/concurrency.ts'
import { useTestDatabase } from './support/test-database.ts'

const database = useTestDatabase({ maxConnections: 20 })

beforeEach(async () => {
  await sql`delete from idempotency.outbox_events`.execute(database.db)
})

async function newCustomer(): Promise<string> {
  const { customer } = await database.db.transaction().execute((tx) => createCustomer(tx, { clientId: 'order-tests', idempotentIdentifier: randomUUID() }))
  return customer.customerId
}

/** A publisher that records what it was given, in order. */
function recorder() {
  const seen: OutboxEvent[] = []
  const publisher: Publisher = { publish: async (event) => void seen.push(event) }
  return { seen, publisher, topics: () => seen.map((event) => event.topic) }
}

/** Runs relay rounds until `done()` (or fails after a minute): for waits on other connections' work. */
async function roundsUntil(relay: ReturnType<typeof createOutboxRelay>, done: () => boolean) {
  const deadline = Date.now() + 60_000
  while (!done()) {
    if (Date.now() > deadline) throw new Error('the relay never got there')
    const round = await relay.runOnce()
    if (round.delivered + round.failed + round.dead === 0) await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

const statusOf = async (topic: string) =>
  (await sql<{ status: string }>`select status from idempotency.outbox_events where topic = ${topic}`.execute(database.db)).rows.map((row) => row.status)

describe('order within a key is write order', () => {
  it("never delivers a later event of a customer before an earlier one whose transaction is still open, and delivers both in order once it commits", async () => {
    const customerId = await newCustomer()
    const { seen, publisher, topics } = recorder()
    const relay = createOutboxRelay({ db: database.db, publishers: { '*': publisher } })

    // Two requests of one customer. B starts writing first (its claim takes the older transaction
    // id), A then writes and emits, B emits after A and commits; A stays open. B also emits for
    // another customer: proof that the relay is running, and past B's transaction, while A is open.
    const other = await newCustomer()
    const bClaimed = new Latch()
    const aEmitted = new Latch()
    const bDone = database.db.transaction().execute((tx) =>
      withIdempotency(tx, { key: randomUUID(), customerId }, async (tx) => {
        // The request's business write: B's transaction id is now older than A's will be.
        await sql`select pg_current_xact_id()`.execute(tx)
        await bClaimed.hold()
        await emit(tx, 'second', { by: 'B' })
        await emit(tx, 'other', {}, { customerId: other })
        return null
      }),
    )
    await bClaimed.entered
    const aDone = database.db.transaction().execute((tx) =>
      withIdempotency(tx, { key: randomUUID(), customerId }, async (tx) => {
        await emit(tx, 'first', { by: 'A' })
        await aEmitted.hold()
        return null
      }),
    )
    await aEmitted.entered
    bClaimed.release()
    await bDone

    try {
      await roundsUntil(relay, () => topics().includes('other'))
      for (let i = 0; i < 3; i++) await relay.runOnce()
      expect(topics()).toEqual(['other'])
      expect(await statusOf('second')).toEqual(['pending'])
    } finally {
      aEmitted.release()
    }
    await aDone
    await roundsUntil(relay, () => seen.length === 3)
    expect(topics()).toEqual(['other', 'first', 'second'])
  })

  it('never delivers an event past one that got its id after the relay found the key ready', async () => {
    const { seen, publisher, topics } = recorder()
    await database.db.transaction().execute((tx) => emit(tx, 'early', {}, { orderingKey: 'k' }))
    // Between the relay's look at the key and its batch: one emitter takes the next id and stays
    // open, a second takes the one after and commits.
    const lateOpen = new Latch()
    let late: Promise<void> | undefined
    let betweenLookAndBatch = async () => {
      betweenLookAndBatch = async () => {}
      late = database.db.transaction().execute(async (tx) => {
        await emit(tx, 'late-first', {}, { orderingKey: 'k' })
        await lateOpen.hold()
      })
      await lateOpen.entered
      await database.db.transaction().execute((tx) => emit(tx, 'late-second', {}, { orderingKey: 'k' }))
    }
    // The relay's look at the keys runs in a transaction of its own: the emitters go between its
    // COMMIT (which releases the key's lock) and the batch's transaction.
    const kysely = kyselyDatabase(database.db)
    let looked = false
    const db = defineDatabase<Transaction<any>>({
      layer: 'kysely, watched',
      transaction: async (fn, options) => {
        looked = false
        const result = await kysely.transaction(fn, options)
        if (looked) await betweenLookAndBatch()
        return result
      },
      session: (tx) => {
        const session = kysely.session(tx)
        return {
          transaction: tx,
          run: (statement) => {
            if (statement.text.includes('pg_sequence_last_value')) looked = true
            return session.run(statement)
          },
        }
      },
    })
    const relay = createOutboxRelay({ db, publishers: { '*': publisher } })
    try {
      await relay.runOnce()
      expect(topics()).toEqual(['early'])
      await relay.runOnce()
      expect(topics()).toEqual(['early'])
    } finally {
      lateOpen.release()
    }
    await late
    await roundsUntil(relay, () => seen.length === 3)
    expect(topics()).toEqual(['early', 'late-first', 'late-second'])
  })

  it('holds one lock for a transaction that emits for many keys, and delivers none of them, nor other keyed events, until it ends', async () => {
    const { seen, publisher, topics } = recorder()
    const relay = createOutboxRelay({ db: database.db, publishers: { '*': publisher } })
    const keys = Array.from({ length: KEYS_LOCKED_ONE_BY_ONE + 20 }, (_, i) => `many-${i}`)
    const latch = new Latch()
    let advisoryLocks = 0
    const batch = database.db.transaction().execute(async (tx) => {
      for (const key of keys) await emit(tx, `batch-${key}`, {}, { orderingKey: key })
      const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_locks where pid = pg_backend_pid() and locktype = 'advisory'`.execute(tx)
      advisoryLocks = rows[0]!.n
      await latch.hold()
    })
    await latch.entered
    expect(advisoryLocks).toBe(KEYS_LOCKED_ONE_BY_ONE + 1)
    await database.db.transaction().execute((tx) => emit(tx, 'keyed', {}, { orderingKey: 'elsewhere' }))
    await database.db.transaction().execute((tx) => emit(tx, 'unkeyed', {}))
    await roundsUntil(relay, () => topics().includes('unkeyed'))
    await relay.runOnce()
    expect(topics()).toEqual(['unkeyed'])
    latch.release()
    await batch
    await roundsUntil(relay, () => seen.length === keys.length + 2)
    expect(new Set(topics()).size).toBe(keys.length + 2)
  })
})

describe("one key's backlog", () => {
  it("does not hold back the other keys: a key whose head is in backoff is passed over, its backlog untouched", async () => {
    const { publisher, topics } = recorder()
    await database.db.transaction().execute(async (tx) => {
      for (let i = 0; i < 50; i++) await emit(tx, `stuck-${i}`, {}, { orderingKey: 'stuck' })
      for (let i = 0; i < 10; i++) await emit(tx, `free-${i}`, {}, { orderingKey: `free-${i}` })
    })
    await sql`update idempotency.outbox_events set attempts = 1, next_attempt_at = now() + interval '1 hour' where topic = 'stuck-0'`.execute(database.db)
    const relay = createOutboxRelay({ db: database.db, publishers: { '*': publisher } })
    expect(await relay.runOnce()).toEqual({ delivered: 10, failed: 0, dead: 0 })
    expect(topics().toSorted()).toEqual(Array.from({ length: 10 }, (_, i) => `free-${i}`).toSorted())
    expect(await relay.runOnce()).toEqual({ delivered: 0, failed: 0, dead: 0 })
  })

  it('is delivered several events per round, in order', async () => {
    const { publisher, topics } = recorder()
    await database.db.transaction().execute(async (tx) => {
      for (let i = 0; i < 100; i++) await emit(tx, `e${i}`, {}, { orderingKey: 'backlog' })
    })
    const relay = createOutboxRelay({ db: database.db, publishers: { '*': publisher } })
    expect(await relay.runOnce()).toEqual({ delivered: 100, failed: 0, dead: 0 })
    expect(topics()).toEqual(Array.from({ length: 100 }, (_, i) => `e${i}`))
  })

  it('stops a key at its first failed event in a round; the events behind it wait for it', async () => {
    const delivered: string[] = []
    let failures = 1
    const publisher: Publisher = {
      publish: async (event) => {
        if (event.topic === 'e2' && failures-- > 0) throw new Error('broker says no')
        delivered.push(event.topic)
      },
    }
    await database.db.transaction().execute(async (tx) => {
      for (let i = 0; i < 5; i++) await emit(tx, `e${i}`, {}, { orderingKey: 'k' })
    })
    const relay = createOutboxRelay({ db: database.db, publishers: { '*': publisher }, backoff: 1, maxBackoff: 1 })
    expect(await relay.runOnce()).toEqual({ delivered: 2, failed: 1, dead: 0 })
    expect(delivered).toEqual(['e0', 'e1'])
    await roundsUntil(relay, () => delivered.length === 5)
    expect(delivered).toEqual(['e0', 'e1', 'e2', 'e3', 'e4'])
  })

  it('serves keys in turn when more keys are ready than a batch holds', async () => {
    const { publisher, topics } = recorder()
    await database.db.transaction().execute(async (tx) => {
      for (let i = 0; i < 3; i++) for (const key of ['a', 'b', 'c']) await emit(tx, `${key}${i}`, {}, { orderingKey: key })
    })
    const relay = createOutboxRelay({ db: database.db, publishers: { '*': publisher }, batchSize: 2 })
    for (let i = 0; i < 5; i++) await relay.runOnce()
    // Rounds of two keys each, taking up where the last one stopped: every key moves.
    expect(topics()).toEqual(['a0', 'b0', 'c0', 'a1', 'b1', 'c1', 'a2', 'b2', 'c2'])
  })

  it('shares a batch between keyed and unkeyed events while both wait, and serves every key in order', async () => {
    const { publisher, seen, topics } = recorder()
    await database.db.transaction().execute(async (tx) => {
      for (let i = 0; i < 10; i++) await emit(tx, `u${i}`, {})
      for (let i = 0; i < 3; i++) for (const key of ['a', 'b', 'c']) await emit(tx, `${key}${i}`, {}, { orderingKey: key })
    })
    const relay = createOutboxRelay({ db: database.db, publishers: { '*': publisher }, batchSize: 4 })
    const rounds: string[][] = []
    while (seen.length < 19) {
      const before = seen.length
      await relay.runOnce()
      rounds.push(topics().slice(before))
    }
    // While both kinds wait, each round carries both.
    for (const round of rounds.slice(0, 4)) {
      expect(round.filter((topic) => topic.startsWith('u'))).toHaveLength(2)
      expect(round.filter((topic) => !topic.startsWith('u'))).toHaveLength(2)
    }
    for (const key of ['a', 'b', 'c']) expect(topics().filter((topic) => topic.startsWith(key))).toEqual([`${key}0`, `${key}1`, `${key}2`])
  })
})

describe('redrive', () => {
  it("makes a dead event eligible at once with the docs' statement", async () => {
    const docs = readFileSync(new URL('../docs/outbox.md', import.meta.url), 'utf8')
    const redrive = /`(UPDATE idempotency\.outbox_events SET status = 'pending'[^`]*)`/.exec(docs)?.[1]
    expect(redrive).toBeDefined()
    const customerId = await newCustomer()
    let broken = true
    const delivered: string[] = []
    const publisher: Publisher = {
      publish: async (event) => {
        if (broken && event.topic === 'poison') throw new Error('broker says no')
        delivered.push(event.topic)
      },
    }
    await database.db.transaction().execute(async (tx) => {
      await emit(tx, 'poison', {}, { customerId })
      await emit(tx, 'behind', {}, { customerId })
    })
    // A long last backoff, as a real one would be.
    const relay = createOutboxRelay({ db: database.db, publishers: { '*': publisher }, maxAttempts: 1, backoff: '10m', maxBackoff: '10m' })
    expect(await relay.runOnce()).toEqual({ delivered: 0, failed: 0, dead: 1 })
    expect(await relay.runOnce()).toEqual({ delivered: 1, failed: 0, dead: 0 })
    broken = false
    await sql.raw(redrive!).execute(database.db)
    expect(await relay.runOnce()).toEqual({ delivered: 1, failed: 0, dead: 0 })
    expect(delivered).toEqual(['behind', 'poison'])
  })
})
