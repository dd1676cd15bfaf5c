import { randomUUID } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildPaymentsApp } from '../../examples/payments/app.ts'
import { createPaymentsTables, type PaymentsDatabase } from '../../examples/payments/schema.ts'
import { idempotentFetch } from '../../src/client/index.ts'
import { useTestDatabase } from '../support/test-database.ts'

// The example service reproduces the rows of shared/scenarios.md 2, 3 and 4 over real HTTP.
const database = useTestDatabase<PaymentsDatabase>({ maxConnections: 20 })
let app: FastifyInstance
let url: string

beforeAll(async () => {
  await createPaymentsTables(database.db)
  app = await buildPaymentsApp(database.db)
  await app.listen({ port: 0, host: '127.0.0.1' })
  url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
})
afterAll(async () => {
  await app?.close()
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
