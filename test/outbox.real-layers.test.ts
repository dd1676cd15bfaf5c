// The outbox through the real adapters: emit (each layer's own, in its own transaction, with the
// key's claim) and a relay whose `db` is that layer's database(…), on Drizzle and postgres.js;
// the inbox on Prisma, its write made with Prisma's own client.
import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { emit as drizzleEmit } from '../src/data/drizzle/index.ts'
import { emit as postgresEmit } from '../src/data/postgres/index.ts'
import { withInbox } from '../src/data/prisma/index.ts'
import { createCustomerIn } from '../src/index.ts'
import { createOutboxRelay, pruneDeliveredEvents, type OutboxEvent } from '../src/outbox/index.ts'
import type { OpenLayer } from './data-layers/layer-under-test.ts'
import type { PrismaTx } from './data-layers/prisma-layer.ts'
import { drizzleReal, postgresReal, prismaReal } from './data-layers/real-layers.ts'
import { useTestDatabase } from './support/test-database.ts'

const test = useTestDatabase({ maxConnections: 2 })

describe.each([
  { layer: drizzleReal, emit: drizzleEmit as (tx: any, topic: string, payload: unknown, options?: { orderingKey?: string; customerId?: string }) => Promise<string> },
  { layer: postgresReal, emit: postgresEmit as (tx: any, topic: string, payload: unknown, options?: { orderingKey?: string; customerId?: string }) => Promise<string> },
])('the outbox on $layer.name', ({ layer, emit }) => {
  let open: OpenLayer<any>
  beforeAll(async () => {
    open = await layer.open(test.url, 4)
  })
  afterAll(() => open?.close())

  it("emits with the key's claim (a replay emits nothing) and the relay delivers typed events in order, retrying a failure", async () => {
    const topic = `deposits-${randomUUID()}`
    const { customer } = await open.database.transaction((tx) => createCustomerIn(open.database.session(tx), { clientId: 'outbox', idempotentIdentifier: randomUUID() }))
    const deposit = (amount: number) =>
      open.database.transaction((tx) =>
        open.withIdempotency(tx, { scope: 'outbox', key: `deposit-${topic}-${amount}`, customerId: customer.customerId }, async (tx) => ({
          eventId: await emit(tx, topic, { amount }, { customerId: customer.customerId }),
        })),
      )
    const first = await deposit(1)
    expect((await deposit(1)).value).toEqual(first.value)
    const second = await deposit(2)
    const unkeyed = await open.database.transaction((tx) => emit(tx, topic, ['unkeyed']))

    const seen: OutboxEvent[] = []
    let failOnce = true
    const relay = createOutboxRelay({
      db: open.database,
      backoff: 1,
      maxBackoff: 1,
      publishers: {
        '*': {
          publish: async (event) => {
            if (event.topic !== topic) return
            if (failOnce && event.eventId === first.value.eventId) {
              failOnce = false
              throw new Error('broker down')
            }
            seen.push(event)
          },
        },
      },
    })
    for (let round = 0; round < 200 && seen.length < 3; round++) await relay.runOnce()
    expect(seen.map((event) => event.eventId).filter((id) => id !== unkeyed)).toEqual([first.value.eventId, second.value.eventId])
    expect(seen.map((event) => event.eventId)).toContain(unkeyed)
    const head = seen.find((event) => event.eventId === first.value.eventId)!
    expect(head).toMatchObject({ topic, orderingKey: customer.customerId, customerId: customer.customerId, payload: { amount: 1 }, attempts: 1 })
    expect(head.createdAt).toBeInstanceOf(Date)
    expect(seen.find((event) => event.eventId === unkeyed)).toMatchObject({ orderingKey: null, customerId: null, payload: ['unkeyed'], attempts: 0 })
    const { rows } = await sql<{ n: string }>`select count(*)::text as n from idempotency.outbox_events where topic = ${topic}`.execute(test.db)
    expect(rows[0]!.n).toBe('3')

    await sql`update idempotency.outbox_events set delivered_at = now() - interval '1 day' where topic = ${topic}`.execute(test.db)
    expect(await pruneDeliveredEvents(open.database, { olderThan: '1h' })).toBeGreaterThanOrEqual(3)
  })
})

describe('the inbox on Prisma', () => {
  let open: OpenLayer<PrismaTx>
  beforeAll(async () => {
    await sql`create table if not exists contract_ledger (scope text not null, amount int not null)`.execute(test.db)
    open = await prismaReal.open(test.url, 4)
  })
  afterAll(() => open?.close())

  it("applies a message once with Prisma's own write; a redelivery, even a concurrent one, is a duplicate with the first value", async () => {
    const message = { source: 'prisma', messageId: randomUUID() }
    const apply = () =>
      open.database.transaction((tx) =>
        withInbox(tx, message, async (tx) => {
          const row = await tx.contract_ledger.create({ data: { scope: message.messageId, amount: 7 } })
          return { applied: row.scope }
        }),
      )
    const outcomes = await Promise.all([apply(), apply(), apply()])
    expect(outcomes.filter((outcome) => !outcome.duplicate)).toHaveLength(1)
    for (const outcome of outcomes) expect(outcome.value).toEqual({ applied: message.messageId })
    const { rows } = await sql<{ n: string }>`select count(*)::text as n from contract_ledger where scope = ${message.messageId}`.execute(test.db)
    expect(rows[0]!.n).toBe('1')
  })
})
