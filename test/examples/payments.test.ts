import { randomUUID } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildPaymentsApp } from '../../examples/payments/app.ts'
import { createPaymentsTables, type PaymentsDatabase } from '../../examples/payments/schema.ts'
import { PgBoss } from 'pg-boss'
import { idempotentFetch } from '../../src/client/index.ts'
import { registerJobs } from '../../src/jobs/index.ts'
import { useTestDatabase } from '../support/test-database.ts'

// The example service reproduces every row of shared/scenarios.md over real HTTP.
const database = useTestDatabase<PaymentsDatabase>({ maxConnections: 20 })
let app: FastifyInstance
let url: string

let boss: PgBoss

beforeAll(async () => {
  await createPaymentsTables(database.db)
  boss = new PgBoss({ connectionString: database.url, max: 4 })
  boss.on('error', () => {})
  await boss.start()
  await registerJobs(boss, { db: database.db, sweep: false })
  app = await buildPaymentsApp(database.db, boss)
  await app.listen({ port: 0, host: '127.0.0.1' })
  url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
})
afterAll(async () => {
  await app?.close()
  await boss?.stop({ graceful: false })
})

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
const count = async (table: 'accounts' | 'ledger' | 'link_tokens') =>
  (await sql<{ n: number }>`select count(*)::int as n from ${sql.table(table)}`.execute(database.db)).rows[0]!.n

async function openAccount(): Promise<string> {
  const response = await post(`/persons/${randomUUID()}/accounts`, { currency: 'EUR' })
  return ((await response.json()) as { id: string }).id
}

describe('scenario 2: optional x-request-id', () => {
  it('replays the identical response even with another body, and makes nothing new', async () => {
    const id = randomUUID()
    const before = await count('accounts')
    const first = await post('/persons/p-7/accounts', { currency: 'EUR' }, { 'x-request-id': id })
    const again = await post('/persons/p-7/accounts', { currency: 'USD' }, { 'x-request-id': id })
    expect(first.status).toBe(201)
    expect(await again.text()).toBe(await first.text())
    expect(again.headers.get('location')).toBe(first.headers.get('location'))
    expect(await count('accounts')).toBe(before + 1)
  })

  it('makes a new object for every POST without a request id, and requires a UUID when one is sent', async () => {
    const before = await count('accounts')
    await post('/persons/p-8/accounts', {})
    await post('/persons/p-8/accounts', {})
    expect(await count('accounts')).toBe(before + 2)
    expect((await post('/persons/p-8/accounts', {}, { 'x-request-id': 'not-a-uuid' })).status).toBe(400)
  })
})

describe('scenario 3: required keys for money movement', () => {
  it('requires the key, replays the same body, rejects another body, and treats another key as new', async () => {
    const account = await openAccount()
    const path = `/accounts/${account}/deposits`
    expect((await post(path, { amount: 100 })).status).toBe(400)
    const key = randomUUID()
    const first = await post(path, { amount: 100 }, { 'idempotency-key': key })
    const same = await post(path, { amount: 100 }, { 'idempotency-key': key })
    const other = await post(path, { amount: 150 }, { 'idempotency-key': key })
    const fresh = await post(path, { amount: 100 }, { 'idempotency-key': randomUUID() })
    expect([first.status, same.status, other.status, fresh.status]).toEqual([201, 201, 422, 201])
    expect(await same.text()).toBe(await first.text())
    const ledger = await database.db.selectFrom('ledger').select('amount').where('account_id', '=', account).execute()
    expect(ledger).toHaveLength(2)
  })

  it('starts a new request once the key expired after 24 hours', async () => {
    const account = await openAccount()
    const path = `/accounts/${account}/deposits`
    const key = randomUUID()
    await post(path, { amount: 5 }, { 'idempotency-key': key })
    const { rows } = await sql<{ hours: number }>`
      select extract(epoch from expires_at - completed_at)::int / 3600 as hours from idempotency.idempotency_keys where key = ${key}`.execute(database.db)
    expect(rows).toEqual([{ hours: 24 }])
    await sql`update idempotency.idempotency_keys set expires_at = now() - interval '1 second' where key = ${key}`.execute(database.db)
    const later = await post(path, { amount: 5 }, { 'idempotency-key': key })
    expect(later.headers.get('idempotent-replayed')).toBeNull()
    expect((await database.db.selectFrom('ledger').select('id').where('account_id', '=', account).execute()).length).toBe(2)
  })

  it('stores nothing for a request that failed validation, so the key still works', async () => {
    const account = await openAccount()
    const key = randomUUID()
    expect((await post(`/accounts/${account}/deposits`, { amount: -5 }, { 'idempotency-key': key })).status).toBe(400)
    expect((await post(`/accounts/${account}/deposits`, { amount: 5 }, { 'idempotency-key': key })).status).toBe(201)
  })

  it('stores a declined withdrawal and replays the decline', async () => {
    const account = await openAccount()
    const key = randomUUID()
    const first = await post(`/accounts/${account}/withdrawals`, { amount: 1000 }, { 'idempotency-key': key })
    await post(`/accounts/${account}/deposits`, { amount: 5000 }, { 'idempotency-key': randomUUID() })
    // The balance would now allow it, but the key's answer is the decline.
    const again = await post(`/accounts/${account}/withdrawals`, { amount: 1000 }, { 'idempotency-key': key })
    expect([first.status, again.status]).toEqual([422, 422])
    expect(again.headers.get('idempotent-replayed')).toBe('true')
  })

  it('answers GET without any key', async () => {
    const account = await openAccount()
    expect((await fetch(`${url}/accounts/${account}`)).status).toBe(200)
  })
})

describe('scenario 4: client retries with one key', () => {
  it('replays a response the network lost, after the retrying client sends the same key again', async () => {
    let calls = 0
    const losesFirst: typeof fetch = async (input, init) => {
      const response = await fetch(input, init)
      if (++calls === 1) {
        await response.arrayBuffer()
        throw new TypeError('connection reset')
      }
      return response
    }
    const before = await count('link_tokens')
    const response = await idempotentFetch(
      `${url}/link/token/create`,
      { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ client_user_id: 'u-1' }) },
      { fetch: losesFirst, sleep: async () => {} },
    )
    expect(response.status).toBe(200)
    expect(response.headers.get('idempotent-replayed')).toBe('true')
    expect(calls).toBe(2)
    expect(await count('link_tokens')).toBe(before + 1)
  })

  it('answers 409 for the same key with another body, which the client does not retry', async () => {
    const key = randomUUID()
    await post('/link/token/create', { client_user_id: 'u-1' }, { 'idempotency-key': key })
    let calls = 0
    const counting: typeof fetch = (input, init) => {
      calls++
      return fetch(input, init)
    }
    const response = await idempotentFetch(
      `${url}/link/token/create`,
      { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ client_user_id: 'u-2' }) },
      { key, fetch: counting },
    )
    expect(response.status).toBe(409)
    expect(calls).toBe(1)
  })

  it('turns fifty concurrent duplicates into one deposit: in-progress 409s are retried into replays', async () => {
    const account = await openAccount()
    const key = randomUUID()
    const responses = await Promise.all(
      Array.from({ length: 50 }, () =>
        idempotentFetch(
          `${url}/accounts/${account}/deposits`,
          { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ amount: 25 }) },
          { key, sleep: () => new Promise((resolve) => setTimeout(resolve, 5)), maxAttempts: 1000, maxElapsed: '60s' },
        ),
      ),
    )
    expect(new Set(responses.map((r) => r.status))).toEqual(new Set([201]))
    expect(responses.filter((r) => r.headers.get('idempotent-replayed') === 'true')).toHaveLength(49)
    expect((await database.db.selectFrom('ledger').select('id').where('account_id', '=', account).execute()).length).toBe(1)
  })
})

describe('scenario 1: customers by the client identifier', () => {
  const asClient = (client: string, headers: Record<string, string> = {}) => ({ 'x-api-key': client, ...headers })
  const createCustomer = (client: string, identifier: string) => post('/customers', { client_metadata: { idempotent_identifier: identifier } }, asClient(client))
  const customerIdOf = async (response: Response) => ((await response.json()) as { data: { customer_id: string } }).data.customer_id

  it('creates once (201), returns the same customer again (200), and finds it without its UUID', async () => {
    const client = randomUUID()
    const first = await createCustomer(client, 'user-123')
    const again = await createCustomer(client, 'user-123')
    expect([first.status, again.status]).toEqual([201, 200])
    const created = await customerIdOf(first)
    expect(await customerIdOf(again)).toBe(created)
    const found = await fetch(`${url}/customers?idempotent_identifier=user-123`, { headers: asClient(client) })
    expect(await customerIdOf(found)).toBe(created)
  })

  it('makes one customer from many concurrent creates', async () => {
    const client = randomUUID()
    const responses = await Promise.all(Array.from({ length: 40 }, () => createCustomer(client, 'burst')))
    expect(responses.filter((r) => r.status === 201)).toHaveLength(1)
    expect(responses.filter((r) => r.status === 200)).toHaveLength(39)
  })

  it('names the customer by either header on every call, never both', async () => {
    const client = randomUUID()
    const customerId = await customerIdOf(await createCustomer(client, 'acct-owner'))
    const byIdentifier = asClient(client, { 'x-customer-idempotent-identifier': 'acct-owner' })
    expect((await post('/financial/accounts', { name: 'savings' }, byIdentifier)).status).toBe(201)
    const byId = await fetch(`${url}/financial/accounts`, { headers: asClient(client, { 'x-customer-id': customerId }) })
    expect(((await byId.json()) as unknown[]).length).toBe(1)
    const both = await fetch(`${url}/financial/accounts`, { headers: asClient(client, { 'x-customer-id': customerId, 'x-customer-idempotent-identifier': 'acct-owner' }) })
    expect(both.status).toBe(400)
    expect(both.headers.get('content-type')).toMatch(/problem\+json/)
    const unknown = await fetch(`${url}/financial/accounts`, { headers: asClient(client, { 'x-customer-idempotent-identifier': 'nobody' }) })
    expect(unknown.status).toBe(404)
  })

  it('refuses personal data as an identifier', async () => {
    const response = await createCustomer(randomUUID(), 'jane@example.com')
    expect(response.status).toBe(400)
    expect(((await response.json()) as { code: string }).code).toBe('CUSTOMER_IDENTIFIER_PERSONAL_DATA')
  })

  it('deletes in the background after a 202: the data goes, then the identifier makes a fresh customer', async () => {
    const client = randomUUID()
    const customerId = await customerIdOf(await createCustomer(client, 'leaving'))
    const onBehalf = asClient(client, { 'x-customer-idempotent-identifier': 'leaving' })
    await post('/financial/accounts', { name: 'a' }, onBehalf)
    await post('/financial/accounts', { name: 'b' }, onBehalf)
    const accepted = await fetch(`${url}/customers/idempotent-identifier/leaving`, { method: 'DELETE', headers: asClient(client) })
    expect(accepted.status).toBe(202)
    const repeat = await fetch(`${url}/customers/idempotent-identifier/leaving`, { method: 'DELETE', headers: asClient(client) })
    expect(repeat.status).toBe(202)
    // The worker deletes in the background; the progress is readable until and after it is done.
    let deletion: { state: string; deletedRows: Record<string, number> }
    for (;;) {
      deletion = (await (await fetch(`${url}/customers/${customerId}/deletion`, { headers: asClient(client) })).json()) as typeof deletion
      if (deletion.state === 'done') break
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    expect(deletion.deletedRows).toMatchObject({ 'public.financial_accounts': 2, 'idempotency.customers': 1 })
    const fresh = await createCustomer(client, 'leaving')
    expect(fresh.status).toBe(201)
    expect(await customerIdOf(fresh)).not.toBe(customerId)
  })
})
