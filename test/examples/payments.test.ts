import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { beforeAll, describe, expect, it } from 'vitest'
import { createApiClient } from '../../examples/payments/api-clients.ts'
import type { PaymentsDatabase } from '../../examples/payments/schema.ts'
import { idempotentFetch } from '../../src/client/index.ts'
import pg from 'pg'
import { lockWatcher } from '../support/concurrency.ts'
import { usePaymentsApp } from '../support/payments-app.ts'
import { useTestDatabase } from '../support/test-database.ts'

// The example service reproduces every row of shared/scenarios.md over real HTTP.
const database = useTestDatabase<PaymentsDatabase>({ maxConnections: 20 })
const service = usePaymentsApp(database)
// The API key every request below sends unless it says otherwise (the service authenticates it).
let apiKey: string

/** A new API client of the service: its key. */
const newClient = async () => (await createApiClient(database.db, `client-${randomUUID()}`)).apiKey

beforeAll(async () => {
  apiKey = await newClient()
})

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(service.url + path, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': apiKey, ...headers }, body: JSON.stringify(body) })
const get = (path: string, headers: Record<string, string> = {}) => fetch(service.url + path, { headers: { 'x-api-key': apiKey, ...headers } })
const count = async (table: 'accounts' | 'ledger' | 'link_tokens') =>
  (await sql<{ n: number }>`select count(*)::int as n from ${sql.table(table)}`.execute(database.db)).rows[0]!.n

async function openAccount(headers: Record<string, string> = {}): Promise<string> {
  const response = await post(`/persons/${randomUUID()}/accounts`, { currency: 'EUR' }, headers)
  return ((await response.json()) as { id: string }).id
}

/** A problem+json response whose body names no SQLSTATE and no driver message. */
async function problemOf(response: Response) {
  expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/)
  const text = await response.text()
  expect(text).not.toMatch(/\b(22P02|22021|23505|SQLSTATE|invalid input syntax|invalid byte sequence|violates)\b/i)
  return JSON.parse(text) as { type: string; status: number; title: string; code?: string }
}

describe('scenario 2: optional x-request-id', () => {
  it('replays the identical response even with another body, and makes nothing new', async () => {
    const id = randomUUID()
    const before = await count('accounts')
    const first = await post('/persons/p-7/accounts', { currency: 'EUR' }, { 'x-request-id': id })
    const again = await post('/persons/p-7/accounts', { currency: 'EUR', note: 'other' }, { 'x-request-id': id })
    expect(first.status).toBe(201)
    expect(await again.text()).toBe(await first.text())
    expect(again.headers.get('location')).toBe(first.headers.get('location'))
    expect(await count('accounts')).toBe(before + 1)
  })

  it("applies a repeat's changed currency to the existing account, yet returns the original response (the platform's quirk)", async () => {
    const id = randomUUID()
    const first = await post('/persons/p-9/accounts', { currency: 'EUR' }, { 'x-request-id': id })
    const firstText = await first.text()
    const account = JSON.parse(firstText) as { id: string; currency: string }
    const again = await post('/persons/p-9/accounts', { currency: 'USD' }, { 'x-request-id': id })
    expect(again.status).toBe(201)
    expect(again.headers.get('idempotent-replayed')).toBe('true')
    expect(await again.text()).toBe(firstText)
    expect(account.currency).toBe('EUR')
    const stored = await database.db.selectFrom('accounts').select('currency').where('id', '=', account.id).executeTakeFirstOrThrow()
    expect(stored.currency).toBe('USD')
    // The same request id for another person changes nothing: it only replays.
    const elsewhere = await post('/persons/p-10/accounts', { currency: 'GBP' }, { 'x-request-id': id })
    expect(await elsewhere.text()).toBe(firstText)
    expect((await database.db.selectFrom('accounts').select('currency').where('id', '=', account.id).executeTakeFirstOrThrow()).currency).toBe('USD')
    expect(await database.db.selectFrom('accounts').select('id').where('person_id', '=', 'p-10').execute()).toEqual([])
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
    expect((await get(`/accounts/${account}`)).status).toBe(200)
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
      `${service.url}/link/token/create`,
      { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': apiKey }, body: JSON.stringify({ client_user_id: 'u-1' }) },
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
      `${service.url}/link/token/create`,
      { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': apiKey }, body: JSON.stringify({ client_user_id: 'u-2' }) },
      { key, fetch: counting },
    )
    expect(response.status).toBe(409)
    expect(calls).toBe(1)
  })

  it('makes concurrent retries of one key wait for the first and replay it, never a 409 (the client reads 409 as a reused key)', async () => {
    const key = randomUUID()
    const before = await count('link_tokens')
    // Hold the table, so the first request stops inside its handler with its key claimed.
    const holder = new pg.Client({ connectionString: database.url })
    await holder.connect()
    const watcher = await lockWatcher(database.url)
    try {
      await holder.query('begin')
      await holder.query('lock table link_tokens in exclusive mode')
      const send = () => post('/link/token/create', { client_user_id: 'u-wait' }, { 'idempotency-key': key })
      const first = send()
      for (;;) {
        const { rows } = await holder.query<{ n: number }>(`select count(*)::int as n from pg_locks where relation = 'link_tokens'::regclass and not granted`)
        if (rows[0]!.n > 0) break
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
      const twins = Array.from({ length: 5 }, send)
      // Either the twins queue behind the first (wait) or they have all been answered (a 409 each).
      await Promise.race([watcher.untilWaiting(5), Promise.all(twins)])
      await holder.query('commit')
      const responses = await Promise.all([first, ...twins])
      expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200])
      const bodies = await Promise.all(responses.map((r) => r.text()))
      expect(new Set(bodies).size).toBe(1)
      expect(responses.filter((r) => r.headers.get('idempotent-replayed') === 'true')).toHaveLength(5)
      expect(await count('link_tokens')).toBe(before + 1)
    } finally {
      await holder.query('rollback').catch(() => {})
      await holder.end()
      await watcher.close()
    }
  })

  it('turns fifty concurrent duplicates into one deposit: in-progress 409s are retried into replays', async () => {
    const account = await openAccount()
    const key = randomUUID()
    const responses = await Promise.all(
      Array.from({ length: 50 }, () =>
        idempotentFetch(
          `${service.url}/accounts/${account}/deposits`,
          { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': apiKey }, body: JSON.stringify({ amount: 25 }) },
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
    const client = await newClient()
    const first = await createCustomer(client, 'user-123')
    const again = await createCustomer(client, 'user-123')
    expect([first.status, again.status]).toEqual([201, 200])
    const created = await customerIdOf(first)
    expect(await customerIdOf(again)).toBe(created)
    const found = await fetch(`${service.url}/customers?idempotent_identifier=user-123`, { headers: asClient(client) })
    expect(await customerIdOf(found)).toBe(created)
  })

  it('makes one customer from many concurrent creates', async () => {
    const client = await newClient()
    const responses = await Promise.all(Array.from({ length: 40 }, () => createCustomer(client, 'burst')))
    expect(responses.filter((r) => r.status === 201)).toHaveLength(1)
    expect(responses.filter((r) => r.status === 200)).toHaveLength(39)
  })

  it('names the customer by either header on every call, never both', async () => {
    const client = await newClient()
    const customerId = await customerIdOf(await createCustomer(client, 'acct-owner'))
    const byIdentifier = asClient(client, { 'x-customer-idempotent-identifier': 'acct-owner' })
    expect((await post('/financial/accounts', { name: 'savings' }, byIdentifier)).status).toBe(201)
    const byId = await fetch(`${service.url}/financial/accounts`, { headers: asClient(client, { 'x-customer-id': customerId }) })
    expect(((await byId.json()) as unknown[]).length).toBe(1)
    const both = await fetch(`${service.url}/financial/accounts`, { headers: asClient(client, { 'x-customer-id': customerId, 'x-customer-idempotent-identifier': 'acct-owner' }) })
    expect(both.status).toBe(400)
    expect(both.headers.get('content-type')).toMatch(/problem\+json/)
    const unknown = await fetch(`${service.url}/financial/accounts`, { headers: asClient(client, { 'x-customer-idempotent-identifier': 'nobody' }) })
    expect(unknown.status).toBe(404)
  })

  it('answers a wrong customer reference with its 4xx problem on a POST without an idempotency key too', async () => {
    const client = await newClient()
    const { customerId } = (await (await createCustomer(client, 'keyless')).json()) as { customerId: string }
    const cases: Array<[Record<string, string>, number]> = [
      [{ 'x-customer-id': customerId, 'x-customer-idempotent-identifier': 'keyless' }, 400],
      [{}, 400],
      [{ 'x-customer-id': 'not-a-uuid' }, 400],
      [{ 'x-customer-idempotent-identifier': 'nobody-here' }, 404],
      [{ 'x-customer-id': randomUUID() }, 404],
    ]
    for (const [headers, status] of cases) {
      for (const key of [{}, { 'idempotency-key': randomUUID() }] as Record<string, string>[]) {
        const response = await post('/financial/accounts', { name: 'n' }, asClient(client, { ...headers, ...key }))
        expect(response.status, JSON.stringify({ headers, key })).toBe(status)
        await problemOf(response)
      }
    }
  })

  it('refuses personal data as an identifier', async () => {
    const response = await createCustomer(await newClient(), 'jane@example.com')
    expect(response.status).toBe(400)
    expect(((await response.json()) as { code: string }).code).toBe('CUSTOMER_IDENTIFIER_PERSONAL_DATA')
  })

  it('deletes in the background after a 202: the data goes, then the identifier makes a fresh customer', async () => {
    const client = await newClient()
    const customerId = await customerIdOf(await createCustomer(client, 'leaving'))
    const onBehalf = asClient(client, { 'x-customer-idempotent-identifier': 'leaving' })
    await post('/financial/accounts', { name: 'a' }, onBehalf)
    await post('/financial/accounts', { name: 'b' }, onBehalf)
    const accepted = await fetch(`${service.url}/customers/idempotent-identifier/leaving`, { method: 'DELETE', headers: asClient(client) })
    expect(accepted.status).toBe(202)
    const repeat = await fetch(`${service.url}/customers/idempotent-identifier/leaving`, { method: 'DELETE', headers: asClient(client) })
    expect(repeat.status).toBe(202)
    // The worker deletes in the background; the progress is readable until and after it is done.
    let deletion: { state: string; deletedRows: Record<string, number> }
    for (;;) {
      deletion = (await (await fetch(`${service.url}/customers/${customerId}/deletion`, { headers: asClient(client) })).json()) as typeof deletion
      if (deletion.state === 'done') break
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    expect(deletion.deletedRows).toMatchObject({ 'public.financial_accounts': 2, 'idempotency.customers': 1 })
    const fresh = await createCustomer(client, 'leaving')
    expect(fresh.status).toBe(201)
    expect(await customerIdOf(fresh)).not.toBe(customerId)
  })
})

describe('the API clients and their accounts', () => {
  it('authenticates every request: no key or an unknown key is a 401 problem', async () => {
    for (const headers of [{}, { 'x-api-key': 'pk_nobody' }, { 'x-api-key': 'x'.repeat(500) }]) {
      const response = await fetch(`${service.url}/persons/p-1/accounts`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: '{}' })
      expect(response.status).toBe(401)
      expect((await problemOf(response)).type).toMatch(/unauthenticated$/)
    }
  })

  it("keeps one client's accounts from another: no deposit, no read, no ledger", async () => {
    const other = await newClient()
    const account = await openAccount()
    const deposit = await post(`/accounts/${account}/deposits`, { amount: 100 }, { 'x-api-key': other, 'idempotency-key': randomUUID() })
    expect(deposit.status).toBe(404)
    expect((await problemOf(deposit)).type).toMatch(/account-not-found$/)
    expect((await get(`/accounts/${account}`, { 'x-api-key': other })).status).toBe(404)
    expect((await get(`/accounts/${account}/ledger`, { 'x-api-key': other })).status).toBe(404)
    expect(await database.db.selectFrom('ledger').select('id').where('account_id', '=', account).execute()).toEqual([])
    // Its owner still can.
    expect((await post(`/accounts/${account}/deposits`, { amount: 100 }, { 'idempotency-key': randomUUID() })).status).toBe(201)
  })

  it('never stores or scopes by the raw API key: the scope holds the client id', async () => {
    const key = randomUUID()
    await post(`/accounts/${await openAccount()}/deposits`, { amount: 1 }, { 'idempotency-key': key })
    const { rows } = await sql<{ scope: string }>`select scope from idempotency.idempotency_keys where key = ${key}`.execute(database.db)
    expect(rows).toHaveLength(1)
    expect(rows[0]!.scope).not.toContain(apiKey)
    const stored = await database.db.selectFrom('api_clients').select('key_sha256').execute()
    expect(JSON.stringify(stored)).not.toContain(apiKey)
  })
})

describe('every error is a problem, never a 500', () => {
  const someId = '0f8fad5b-d9cb-469f-a165-70867728950e'

  it('answers an unknown route with a 404 problem', async () => {
    const response = await get('/no/such/route')
    expect(response.status).toBe(404)
    await problemOf(response)
  })

  it('answers validation errors and unparsable bodies with a 400 problem', async () => {
    const invalid = await post(`/accounts/${await openAccount()}/deposits`, { amount: -5 }, { 'idempotency-key': randomUUID() })
    expect(invalid.status).toBe(400)
    await problemOf(invalid)
    const broken = await fetch(`${service.url}/link/token/create`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': apiKey }, body: '{"client_user_id":' })
    expect(broken.status).toBe(400)
    await problemOf(broken)
  })

  it('answers a path id the database would refuse (urn:uuid:..., a NUL) with a 400 problem', async () => {
    const paths = [
      `/accounts/urn:uuid:${someId}`,
      `/accounts/urn:uuid:${someId}/ledger`,
      `/accounts/%00/ledger`,
      `/customers/urn:uuid:${someId}/deletion`,
    ]
    for (const path of paths) {
      const response = await get(path)
      expect(response.status, path).toBe(400)
      await problemOf(response)
    }
    for (const path of [`/accounts/urn:uuid:${someId}/deposits`, `/accounts/urn:uuid:${someId}/withdrawals`]) {
      const response = await post(path, { amount: 1 }, { 'idempotency-key': randomUUID() })
      expect(response.status, path).toBe(400)
      await problemOf(response)
    }
    for (const person of ['a%00b', 'urn:uuid:x', '%F0%9F%92%A5']) {
      const response = await post(`/persons/${person}/accounts`, { currency: 'EUR' })
      expect(response.status, person).toBe(400)
      await problemOf(response)
    }
  })

  it('answers a NUL in a body with a 400 problem, with a key and without one', async () => {
    for (const headers of [{}, { 'idempotency-key': randomUUID() }] as Record<string, string>[]) {
      const response = await post('/link/token/create', { client_user_id: 'a\u0000b' }, headers)
      expect(response.status).toBe(400)
      await problemOf(response)
    }
  })
})
