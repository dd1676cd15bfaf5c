// An app whose data layer renames result columns (postgres.js `transform: postgres.camel`, Knex
// with a deep camelCase `postProcessResponse` and a snake_case `wrapIdentifier`, as their docs
// show) shares that layer with the library: the claim, replays, customers, deletion, the outbox,
// the sweep and the migrations must read their own columns all the same.
import { randomUUID } from 'node:crypto'
import knex from 'knex'
import { sql } from 'kysely'
import postgres from 'postgres'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { database as knexDatabase } from '../../src/data/knex/index.ts'
import { database as postgresDatabase } from '../../src/data/postgres/index.ts'
import {
  createCustomerIn,
  deleteCustomerData,
  emitIn,
  findCustomerIn,
  getCustomerDeletion,
  migrate,
  sweepExpiredKeys,
  withIdempotencyIn,
  type IdempotencyDatabase,
} from '../../src/index.ts'
import { createOutboxRelay, type OutboxEvent } from '../../src/outbox/index.ts'
import { useTestDatabase } from '../support/test-database.ts'

const camel = (name: string) => name.replace(/_([a-z0-9])/g, (_match, letter: string) => letter.toUpperCase())
const snake = (name: string) => name.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`)

/** humps' camelizeKeys: every key of every object and array, however deep (a pg Result too). */
function camelizeKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(camelizeKeys)
  if (value === null || typeof value !== 'object' || Buffer.isBuffer(value) || value instanceof Date) return value
  return Object.fromEntries(Object.entries(value).map(([key, inner]) => [camel(key), camelizeKeys(inner)]))
}

interface TransformingLayer {
  name: string
  open(url: string): { database: IdempotencyDatabase<any>; close(): Promise<void> }
}

const layers: TransformingLayer[] = [
  {
    name: 'postgres.js with transform: postgres.camel',
    open(url) {
      const client = postgres(url, { max: 4, transform: postgres.camel, onnotice: () => {} })
      return { database: postgresDatabase(client), close: () => client.end() }
    },
  },
  {
    name: 'Knex with a camelCase postProcessResponse and a snake_case wrapIdentifier',
    open(url) {
      const client = knex({
        client: 'pg',
        connection: url,
        pool: { min: 0, max: 4 },
        postProcessResponse: (result) => camelizeKeys(result),
        wrapIdentifier: (value, wrap) => wrap(snake(value)),
      })
      return { database: knexDatabase(client), close: () => client.destroy() }
    },
  },
]

const test = useTestDatabase({ maxConnections: 2 })

describe.each(layers)('$name', (layer) => {
  let database: IdempotencyDatabase<any>
  let close: () => Promise<void>
  beforeAll(() => {
    ;({ database, close } = layer.open(test.url))
  })
  afterAll(() => close?.())

  const inTx = <T>(fn: (session: ReturnType<IdempotencyDatabase<any>['session']>) => Promise<T>) => database.transaction((tx) => fn(database.session(tx)))

  it('renames a snake_case result column (what the cases below are immune to)', async () => {
    expect(await inTx((session) => session.run({ text: 'select 1 as created_at', values: [] }))).toEqual([{ createdAt: 1 }])
  })

  it('claims, stores and replays a key; firstSeenAt is the Date the claim recorded', async () => {
    const key = { scope: 'transforms', key: randomUUID(), request: { amount: 1 } }
    const first = await inTx((session) => withIdempotencyIn(session, key, async () => ({ some_field: 1 })))
    const again = await inTx((session) => withIdempotencyIn(session, key, async () => ({ some_field: 2 })))
    expect(first).toMatchObject({ value: { some_field: 1 }, replayed: false })
    expect(again).toMatchObject({ value: { some_field: 1 }, replayed: true })
    expect(again.firstSeenAt).toBeInstanceOf(Date)
    expect(again.firstSeenAt.getTime()).toBe(first.firstSeenAt.getTime())
    const { rows } = await sql<{ ms: string }>`
      select (extract(epoch from date_trunc('milliseconds', created_at)) * 1000)::int8::text as ms from idempotency.idempotency_keys where key = ${key.key}`.execute(test.db)
    expect(again.firstSeenAt.getTime()).toBe(Number(rows[0]!.ms))
    await expect(inTx((session) => withIdempotencyIn(session, { ...key, request: { amount: 2 } }, async () => 3))).rejects.toMatchObject({ code: 'IDEMPOTENCY_KEY_MISMATCH' })
  })

  it('creates, finds and deletes a customer, with its dates and ids as typed', async () => {
    const clientId = randomUUID()
    const { customer, created } = await inTx((session) => createCustomerIn(session, { clientId, idempotentIdentifier: 'buyer', context: { type: 'person', region: 'eu' } }))
    expect(created).toBe(true)
    expect(customer).toMatchObject({ clientId, idempotentIdentifier: 'buyer', context: { type: 'person', region: 'eu' }, status: 'active' })
    expect(customer.createdAt).toBeInstanceOf(Date)
    expect(Number.isNaN(customer.createdAt.getTime())).toBe(false)
    expect(await findCustomerIn(database, { clientId, idempotentIdentifier: 'buyer' })).toEqual(customer)
    await inTx((session) => withIdempotencyIn(session, { key: randomUUID(), customerId: customer.customerId }, async () => 1))
    await sql`update idempotency.customers set status = 'deleting', deletion_requested_at = now() where customer_id = ${customer.customerId}::uuid`.execute(test.db)
    await sql`insert into idempotency.customer_deletions (customer_id, client_id) values (${customer.customerId}::uuid, ${clientId})`.execute(test.db)
    const done = await deleteCustomerData(database, customer.customerId)
    expect(done).toMatchObject({ customerId: customer.customerId, clientId, state: 'done', deletedRows: { 'idempotency.idempotency_keys': 1, 'idempotency.customers': 1 } })
    expect(done.requestedAt).toBeInstanceOf(Date)
    expect(await getCustomerDeletion(database, customer.customerId)).toEqual(done)
  })

  it('emits with the key and relays typed events, keyed and unkeyed', async () => {
    const topic = `transforms-${randomUUID()}`
    const ids = await inTx(async (session) => [
      await emitIn(session, topic, { n: 1 }, { orderingKey: 'ordered' }),
      await emitIn(session, topic, { n: 2 }),
    ])
    const seen: OutboxEvent[] = []
    const relay = createOutboxRelay({ db: database, publishers: { '*': { publish: async (event) => void seen.push(event) } } })
    for (let round = 0; round < 10 && seen.filter((event) => event.topic === topic).length < 2; round++) await relay.runOnce()
    expect(seen.filter((event) => event.topic === topic).map((event) => event.eventId).sort()).toEqual([...ids].sort())
    expect(seen.find((event) => event.orderingKey === 'ordered')).toMatchObject({ topic, payload: { n: 1 }, attempts: 0 })
    for (const event of seen) expect(event.createdAt).toBeInstanceOf(Date)
  })

  it('sweeps expired keys and migrates a fresh schema', async () => {
    const scope = randomUUID()
    await sql`insert into idempotency.idempotency_keys (scope, key, fingerprint, status, response, completed_at, expires_at)
              values (${scope}, 'gone', sha256('x'::bytea), 'completed', '{}', now(), now() - interval '1 minute')`.execute(test.db)
    expect(await sweepExpiredKeys(database)).toBeGreaterThanOrEqual(1)
    const schema = `transformed_${randomUUID().slice(0, 8)}`
    const first = await migrate(database, { schema })
    expect(first.applied.length).toBeGreaterThan(0)
    expect(await migrate(database, { schema })).toEqual({ applied: [], version: first.version })
  })
})
