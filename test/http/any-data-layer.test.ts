// An HTTP route on a data layer that is not kysely (a PoolClient inside BEGIN, made with
// defineDatabase, on a pool that parses no type): the handler gets the layer's own transaction,
// and keys, replays, customers, mismatch handlers and isolation work as they do on kysely.
import type { AddressInfo } from 'node:net'
import { randomUUID } from 'node:crypto'
import express from 'express'
import { sql, type Kysely, type Transaction } from 'kysely'
import type pg from 'pg'
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest'
import { expressIdempotency, keepRawBody } from '../../src/http/express.ts'
import type { HandlerContext, HttpMismatchHandler } from '../../src/http/index.ts'
import { createCustomerIn, type IdempotencyDatabase } from '../../src/index.ts'
import { pgDatabase, textOnlyPool } from '../support/pg-database.ts'
import { useTestDatabase } from '../support/test-database.ts'

const test = useTestDatabase()
let pool: pg.Pool
let database: IdempotencyDatabase<pg.PoolClient>
let url: string
let close: () => Promise<void>
const seen: { mismatchTx?: unknown; firstSeenAt?: unknown; createdAt?: unknown } = {}

beforeAll(async () => {
  pool = textOnlyPool(test.url)
  database = pgDatabase(pool)
  await sql`create table layer_payments (id bigserial primary key, amount int not null, customer_id uuid references idempotency.customers)`.execute(test.db)
  const app = express()
  app.use(express.json({ verify: keepRawBody }))
  const idempotent = expressIdempotency({ db: database, client: (req) => req.get('x-api-key') })
  const insert = async (tx: pg.PoolClient, amount: number, customerId: string | null) =>
    (await tx.query('insert into layer_payments (amount, customer_id) values ($1, $2) returning id::text as id, amount', [amount, customerId])).rows[0]
  app.post(
    '/payments',
    idempotent(
      {
        required: true,
        onMismatch: async ({ tx, firstSeenAt, stored }) => {
          seen.mismatchTx = tx
          seen.firstSeenAt = firstSeenAt
          await tx.query('update layer_payments set amount = amount + 1 where id = $1', [(stored.body as { id: string }).id])
          return 'replay' as const
        },
      },
      async ({ tx, request }) => {
        expectTypeOf(tx).toEqualTypeOf<pg.PoolClient>()
        return { status: 201, body: await insert(tx, request.body.amount, null) }
      },
    ),
  )
  app.post(
    '/customer-payments',
    idempotent({ customer: true }, async ({ tx, request, customer }) => {
      seen.createdAt = customer!.createdAt
      return { status: 201, body: await insert(tx, request.body.amount, customer!.customerId) }
    }),
  )
  app.post(
    '/isolation',
    idempotent({ isolation: 'serializable' }, async ({ tx }) => ({
      status: 200,
      body: { isolation: (await tx.query('show transaction_isolation')).rows[0].transaction_isolation },
    })),
  )
  const server = app.listen(0)
  await new Promise((resolve) => server.once('listening', resolve))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  close = () => new Promise((resolve) => server.close(() => resolve()))
})
afterAll(async () => {
  await close?.()
  await pool?.end()
})

const post = (path: string, body: unknown, headers: Record<string, string>) =>
  fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': 'client-a', ...headers }, body: JSON.stringify(body) })

async function paymentsWith(amount: number): Promise<number> {
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from layer_payments where amount = ${amount}`.execute(test.db)
  return rows[0]!.n
}

describe('an HTTP route on a data layer other than kysely', () => {
  it("types the handler's tx from db: a database's own transaction, Transaction<DB> for a Kysely<DB> or (as before) a kysely DB type", () => {
    interface Ledger {
      ledger: { id: number }
    }
    expectTypeOf<HandlerContext<IdempotencyDatabase<pg.PoolClient>, unknown>['tx']>().toEqualTypeOf<pg.PoolClient>()
    expectTypeOf<HandlerContext<Kysely<Ledger>, unknown>['tx']>().toEqualTypeOf<Transaction<Ledger>>()
    // A bare kysely DB type (what Fastify's decorator was given before any layer could be used) still compiles, untyped: write <Kysely<DB>>.
    expectTypeOf<HandlerContext<Ledger, unknown>['tx']>().toBeAny()
    expectTypeOf<Parameters<HttpMismatchHandler<IdempotencyDatabase<pg.PoolClient>>>[0]['tx']>().toEqualTypeOf<pg.PoolClient>()
    // @ts-expect-error: a database is not a transaction
    expressIdempotency({ db: database })(({ tx }) => ({ status: 200, body: tx.insertInto }))
  })

  it('runs the handler once per key in the layer transaction and replays the stored response', async () => {
    const key = randomUUID()
    const first = await post('/payments', { amount: 101 }, { 'idempotency-key': key })
    expect(first.status).toBe(201)
    const body = await first.json()
    const again = await post('/payments', { amount: 101 }, { 'idempotency-key': key })
    expect(again.status).toBe(201)
    expect(again.headers.get('idempotent-replayed')).toBe('true')
    expect(await again.json()).toEqual(body)
    expect(await paymentsWith(101)).toBe(1)
  })

  it("hands a mismatch handler the layer's own transaction, whose writes commit with the replay", async () => {
    const key = randomUUID()
    const first = await (await post('/payments', { amount: 202 }, { 'idempotency-key': key })).json()
    const changed = await post('/payments', { amount: 999 }, { 'idempotency-key': key })
    expect(changed.status).toBe(201)
    expect(changed.headers.get('idempotent-replayed')).toBe('true')
    expect(await changed.json()).toEqual(first)
    expect(typeof (seen.mismatchTx as pg.PoolClient).query).toBe('function')
    expect((seen.mismatchTx as { isTransaction?: unknown }).isTransaction).toBeUndefined()
    expect(seen.firstSeenAt).toBeInstanceOf(Date)
    expect(await paymentsWith(203)).toBe(1)
    expect(await paymentsWith(999)).toBe(0)
  })

  it('resolves the customer in the request transaction and stores the key as the customer data', async () => {
    const { customer } = await database.transaction((tx) => createCustomerIn(database.session(tx), { clientId: 'client-a', idempotentIdentifier: 'buyer-1' }))
    const key = randomUUID()
    const response = await post('/customer-payments', { amount: 303 }, { 'idempotency-key': key, 'x-customer-idempotent-identifier': 'buyer-1' })
    expect(response.status).toBe(201)
    expect(seen.createdAt).toBeInstanceOf(Date)
    expect((seen.createdAt as Date).getTime()).toBe(customer.createdAt.getTime())
    const { rows } = await sql<{ customer_id: string }>`select customer_id::text from idempotency.idempotency_keys where key = ${key}`.execute(test.db)
    expect(rows).toEqual([{ customer_id: customer.customerId }])
    const unknown = await post('/customer-payments', { amount: 304 }, { 'idempotency-key': randomUUID(), 'x-customer-idempotent-identifier': 'nobody' })
    expect(unknown.status).toBe(404)
    expect(await paymentsWith(304)).toBe(0)
  })

  it("opens the route's transactions at its isolation level", async () => {
    const response = await post('/isolation', {}, { 'idempotency-key': randomUUID() })
    expect(await response.json()).toEqual({ isolation: 'serializable' })
  })
})
