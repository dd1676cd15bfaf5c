import { randomUUID } from 'node:crypto'
import { count, eq, sql } from 'drizzle-orm'
import { beforeAll, describe, expect, it } from 'vitest'
import { createApiClient } from '../../examples/billing/api-clients.ts'
import { MAX_AMOUNT } from '../../examples/billing/input.ts'
import { invoices, payments } from '../../examples/billing/schema.ts'
import { idempotentFetch } from '../../src/client/index.ts'
import { useBillingApp } from '../support/billing-app.ts'
import { responseDroppingProxy } from '../support/response-dropping-proxy.ts'
import { useTestDatabase } from '../support/test-database.ts'

// The Express + Drizzle example serves scenario 4 of shared/scenarios.md over real HTTP.
const service = useBillingApp(useTestDatabase())
// The API key every request below sends unless it says otherwise.
let apiKey: string
const newClient = async () => (await createApiClient(service.db, `client-${randomUUID()}`)).apiKey

beforeAll(async () => {
  apiKey = await newClient()
})

const send = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
  fetch(service.url + path, {
    method,
    headers: { 'x-api-key': apiKey, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  })
const post = (path: string, body: unknown, headers: Record<string, string> = {}) => send('POST', path, body, headers)
const withKey = (key: string, headers: Record<string, string> = {}) => ({ 'idempotency-key': key, ...headers })
const anInvoice = (amountDue = 1000) => ({ customer: 'cus_42', currency: 'EUR', amountDue })

async function issueInvoice(amountDue = 1000, headers: Record<string, string> = {}): Promise<string> {
  const response = await post('/invoices', anInvoice(amountDue), headers)
  expect(response.status).toBe(201)
  return ((await response.json()) as { id: string }).id
}

const invoiceCount = async () => (await service.db.select({ n: count() }).from(invoices))[0]!.n
const paymentsOf = (invoiceId: string) => service.db.select().from(payments).where(eq(payments.invoiceId, invoiceId))
const eventsOf = async (invoiceId: string) =>
  (await service.db.execute<{ n: number }>(sql`select count(*)::int as n from idempotency.outbox_events where topic = 'payment.recorded' and payload->>'invoiceId' = ${invoiceId}`)).rows[0]!.n

/** A problem+json response with a stable code, whose body names no SQLSTATE and no driver message. */
async function problemOf(response: Response) {
  expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/)
  const text = await response.text()
  expect(text).not.toMatch(/\b(22P02|22021|23505|23514|SQLSTATE|invalid input syntax|invalid byte sequence|violates|DrizzleQueryError|Failed query)\b/i)
  const problem = JSON.parse(text) as { type: string; status: number; title: string; code: string }
  expect(problem.code).toMatch(/^[A-Z_]+$/)
  expect(problem.status).toBe(response.status)
  return problem
}

describe('POST /invoices: an optional Idempotency-Key', () => {
  it('answers 201 once, then replays the identical bytes with Idempotent-Replayed: true, and issues one invoice', async () => {
    const key = randomUUID()
    const before = await invoiceCount()
    const first = await post('/invoices', anInvoice(), withKey(key))
    const firstText = await first.text()
    const again = await post('/invoices', anInvoice(), withKey(key))
    expect([first.status, again.status]).toEqual([201, 201])
    expect(first.headers.get('idempotent-replayed')).toBeNull()
    expect(again.headers.get('idempotent-replayed')).toBe('true')
    expect(await again.text()).toBe(firstText)
    expect(again.headers.get('location')).toBe(first.headers.get('location'))
    expect(first.headers.get('location')).toBe(`/invoices/${(JSON.parse(firstText) as { id: string }).id}`)
    expect(await invoiceCount()).toBe(before + 1)
  })

  it('answers the same key with another body with a 409 problem, which the retrying client does not retry', async () => {
    const key = randomUUID()
    await post('/invoices', anInvoice(1000), withKey(key))
    let calls = 0
    const counting: typeof fetch = (input, init) => {
      calls++
      return fetch(input, init)
    }
    const before = await invoiceCount()
    const response = await idempotentFetch(
      `${service.url}/invoices`,
      { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': apiKey }, body: JSON.stringify(anInvoice(2000)) },
      { key, fetch: counting },
    )
    expect(response.status).toBe(409)
    expect(await problemOf(response)).toMatchObject({ code: 'IDEMPOTENCY_KEY_MISMATCH', type: 'https://billing.example/problems/idempotency-key-mismatch' })
    expect(calls).toBe(1)
    expect(await invoiceCount()).toBe(before)
  })

  it('issues a new invoice for every POST without a key, and for another key with the same body', async () => {
    const before = await invoiceCount()
    const ids = new Set([await issueInvoice(), await issueInvoice(), await issueInvoice(1000, withKey(randomUUID())), await issueInvoice(1000, withKey(randomUUID()))])
    expect(ids.size).toBe(4)
    expect(await invoiceCount()).toBe(before + 4)
  })

  it('turns twenty concurrent requests with one key into one invoice: the others wait for it and replay it', async () => {
    const key = randomUUID()
    const before = await invoiceCount()
    const responses = await Promise.all(Array.from({ length: 20 }, () => post('/invoices', anInvoice(777), withKey(key))))
    expect(responses.map((r) => r.status)).toEqual(Array(20).fill(201))
    expect(new Set(await Promise.all(responses.map((r) => r.text()))).size).toBe(1)
    expect(responses.filter((r) => r.headers.get('idempotent-replayed') === 'true')).toHaveLength(19)
    expect(await invoiceCount()).toBe(before + 1)
  })

  it('starts a new request once the key expired after 24 hours', async () => {
    const key = randomUUID()
    const first = (await (await post('/invoices', anInvoice(), withKey(key))).json()) as { id: string }
    const { rows } = await service.db.execute<{ hours: number }>(
      sql`select extract(epoch from expires_at - completed_at)::int / 3600 as hours from idempotency.idempotency_keys where key = ${key}`,
    )
    expect(rows).toEqual([{ hours: 24 }])
    await service.db.execute(sql`update idempotency.idempotency_keys set expires_at = now() - interval '1 second' where key = ${key}`)
    const later = await post('/invoices', anInvoice(), withKey(key))
    expect(later.status).toBe(201)
    expect(later.headers.get('idempotent-replayed')).toBeNull()
    expect(((await later.json()) as { id: string }).id).not.toBe(first.id)
  })
})

describe('POST /invoices/:id/payments: a required Idempotency-Key', () => {
  it('refuses a missing or invalid key with a 400 problem and records nothing', async () => {
    const invoice = await issueInvoice()
    const path = `/invoices/${invoice}/payments`
    const missing = await post(path, { amount: 100 })
    expect(missing.status).toBe(400)
    expect((await problemOf(missing)).code).toBe('IDEMPOTENCY_KEY_MISSING')
    for (const key of ['x'.repeat(256), 'tab\there', '""']) {
      const invalid = await post(path, { amount: 100 }, withKey(key))
      expect(invalid.status, key).toBe(400)
      expect((await problemOf(invalid)).code, key).toBe('IDEMPOTENCY_KEY_INVALID')
    }
    expect(await paymentsOf(invoice)).toEqual([])
  })

  it('records one payment and one event: the repeat replays the identical bytes, another body is a 409', async () => {
    const invoice = await issueInvoice(1000)
    const path = `/invoices/${invoice}/payments`
    const key = randomUUID()
    const first = await post(path, { amount: 400 }, withKey(key))
    const firstText = await first.text()
    const same = await post(path, { amount: 400 }, withKey(key))
    const other = await post(path, { amount: 500 }, withKey(key))
    expect([first.status, same.status, other.status]).toEqual([201, 201, 409])
    expect(await same.text()).toBe(firstText)
    expect(same.headers.get('idempotent-replayed')).toBe('true')
    expect((await problemOf(other)).code).toBe('IDEMPOTENCY_KEY_MISMATCH')
    expect(JSON.parse(firstText)).toMatchObject({ amount: 400, invoiceId: invoice, invoice: { amountPaid: 400, status: 'open' } })
    expect(await paymentsOf(invoice)).toHaveLength(1)
    expect(await eventsOf(invoice)).toBe(1)
    // Another key is another payment; the invoice is paid once the amount due is.
    const rest = await post(path, { amount: 600 }, withKey(randomUUID()))
    expect(((await rest.json()) as { invoice: { status: string } }).invoice.status).toBe('paid')
    expect(await paymentsOf(invoice)).toHaveLength(2)
    expect(await eventsOf(invoice)).toBe(2)
  })

  it('turns twenty concurrent payments with one key into exactly one payment row and one event', async () => {
    const invoice = await issueInvoice(1000)
    const key = randomUUID()
    const responses = await Promise.all(Array.from({ length: 20 }, () => post(`/invoices/${invoice}/payments`, { amount: 10 }, withKey(key))))
    expect(responses.map((r) => r.status)).toEqual(Array(20).fill(201))
    expect(new Set(await Promise.all(responses.map((r) => r.text()))).size).toBe(1)
    expect(responses.filter((r) => r.headers.get('idempotent-replayed') === 'true')).toHaveLength(19)
    expect(await paymentsOf(invoice)).toHaveLength(1)
    expect(await eventsOf(invoice)).toBe(1)
    const [row] = await service.db.select().from(invoices).where(eq(invoices.id, invoice))
    expect(row!.amountPaid).toBe(10)
  })

  it('survives a response lost after commit: the retrying client sends the same key again and ends with one payment', async () => {
    const invoice = await issueInvoice(1000)
    const proxy = await responseDroppingProxy(service.url, 1)
    let attempts = 0
    const counting: typeof fetch = (input, init) => {
      attempts++
      return fetch(input, init)
    }
    try {
      const response = await idempotentFetch(
        `${proxy.url}/invoices/${invoice}/payments`,
        { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': apiKey }, body: JSON.stringify({ amount: 250 }) },
        { fetch: counting, sleep: async () => {} },
      )
      expect(proxy.dropped).toBe(1)
      expect(attempts).toBe(2)
      expect(response.status).toBe(201)
      expect(response.headers.get('idempotent-replayed')).toBe('true')
      expect(await response.json()).toMatchObject({ amount: 250, invoice: { amountPaid: 250 } })
      expect(await paymentsOf(invoice)).toHaveLength(1)
      expect(await eventsOf(invoice)).toBe(1)
    } finally {
      await proxy.close()
    }
  })

  it('stores a refused overpayment as the answer to its key, and keeps no key for a request that failed validation', async () => {
    const invoice = await issueInvoice(100)
    const path = `/invoices/${invoice}/payments`
    const key = randomUUID()
    const refused = await post(path, { amount: 101 }, withKey(key))
    expect(refused.status).toBe(422)
    expect((await problemOf(refused)).code).toBe('PAYMENT_EXCEEDS_AMOUNT_DUE')
    const again = await post(path, { amount: 101 }, withKey(key))
    expect([again.status, again.headers.get('idempotent-replayed')]).toEqual([422, 'true'])
    // A 400 rolls the key back with everything else: the same key works once the body is right.
    const fixable = randomUUID()
    expect((await post(path, { amount: -1 }, withKey(fixable))).status).toBe(400)
    expect((await post(path, { amount: 100 }, withKey(fixable))).status).toBe(201)
    expect(await paymentsOf(invoice)).toHaveLength(1)
  })
})

describe('keys and invoices belong to the client', () => {
  it("never replays another client's response for the same key, and another client's invoice is not found", async () => {
    const other = await newClient()
    const key = randomUUID()
    const mine = await post('/invoices', anInvoice(), withKey(key))
    const theirs = await post('/invoices', anInvoice(), withKey(key, { 'x-api-key': other }))
    expect([mine.status, theirs.status]).toEqual([201, 201])
    expect(theirs.headers.get('idempotent-replayed')).toBeNull()
    const mineId = ((await mine.json()) as { id: string }).id
    expect(((await theirs.json()) as { id: string }).id).not.toBe(mineId)
    // The other client can neither pay nor read nor void this client's invoice, even with the same key.
    const payKey = randomUUID()
    expect((await post(`/invoices/${mineId}/payments`, { amount: 10 }, withKey(payKey))).status).toBe(201)
    const theirPayment = await post(`/invoices/${mineId}/payments`, { amount: 10 }, withKey(payKey, { 'x-api-key': other }))
    expect(theirPayment.status).toBe(404)
    expect((await problemOf(theirPayment)).code).toBe('INVOICE_NOT_FOUND')
    expect((await send('GET', `/invoices/${mineId}`, undefined, { 'x-api-key': other })).status).toBe(404)
    expect((await send('DELETE', `/invoices/${mineId}`, undefined, { 'x-api-key': other })).status).toBe(404)
    expect(await paymentsOf(mineId)).toHaveLength(1)
  })

  it('authenticates every request: no API key or an unknown one is a 401 problem', async () => {
    for (const headers of [{ 'x-api-key': '' }, { 'x-api-key': 'bk_nobody' }, { 'x-api-key': 'x'.repeat(500) }]) {
      const response = await post('/invoices', anInvoice(), { ...headers, 'idempotency-key': randomUUID() })
      expect(response.status).toBe(401)
      expect((await problemOf(response)).code).toBe('UNAUTHENTICATED')
    }
  })
})

describe('GET and DELETE need no key', () => {
  it('reads an invoice with its payments', async () => {
    const invoice = await issueInvoice(1000)
    await post(`/invoices/${invoice}/payments`, { amount: 300 }, withKey(randomUUID()))
    const response = await send('GET', `/invoices/${invoice}`)
    expect(response.status).toBe(200)
    expect(await response.json()).toMatchObject({ id: invoice, amountPaid: 300, status: 'open', payments: [{ amount: 300 }] })
  })

  it('voids an unpaid invoice, the same again; a payment on it is refused, and an invoice with payments is not voided', async () => {
    const invoice = await issueInvoice()
    const first = await send('DELETE', `/invoices/${invoice}`)
    const again = await send('DELETE', `/invoices/${invoice}`)
    expect([first.status, again.status]).toEqual([200, 200])
    expect(await again.json()).toMatchObject({ id: invoice, status: 'void' })
    const payment = await post(`/invoices/${invoice}/payments`, { amount: 1 }, withKey(randomUUID()))
    expect(payment.status).toBe(422)
    expect((await problemOf(payment)).code).toBe('INVOICE_VOID')
    const paid = await issueInvoice()
    await post(`/invoices/${paid}/payments`, { amount: 1 }, withKey(randomUUID()))
    const refused = await send('DELETE', `/invoices/${paid}`)
    expect(refused.status).toBe(422)
    expect((await problemOf(refused)).code).toBe('INVOICE_HAS_PAYMENTS')
  })
})

describe('bad input is a problem with a stable code, never a 500', () => {
  const badInvoices: unknown[] = [
    {},
    [],
    'null',
    { ...anInvoice(), customer: '' },
    { ...anInvoice(), customer: 'a\u0000b' },
    { ...anInvoice(), customer: 'x'.repeat(201) },
    { ...anInvoice(), customer: 42 },
    { ...anInvoice(), currency: 'eur' },
    { ...anInvoice(), amountDue: 0 },
    { ...anInvoice(), amountDue: 1.5 },
    { ...anInvoice(), amountDue: '100' },
    { ...anInvoice(), amountDue: MAX_AMOUNT + 1 },
    { ...anInvoice(), amountDue: 1e300 },
  ]

  it('answers an invalid invoice with a 400 REQUEST_INVALID, with a key and without one, and issues nothing', async () => {
    const before = await invoiceCount()
    for (const body of badInvoices) {
      for (const headers of [{}, withKey(randomUUID())]) {
        const response = await post('/invoices', body, headers)
        expect(response.status, JSON.stringify(body)).toBe(400)
        // A keyed body the key table cannot hold (a NUL) is refused by the library before the handler runs.
        const code = Object.keys(headers).length > 0 && JSON.stringify(body).includes('\\u0000') ? 'IDEMPOTENCY_REQUEST_INVALID' : 'REQUEST_INVALID'
        expect((await problemOf(response)).code, JSON.stringify(body)).toBe(code)
      }
    }
    expect(await invoiceCount()).toBe(before)
  })

  it('answers an unparsable body, a body that is not JSON and a body too large with a problem', async () => {
    const cases: Array<[RequestInit, number]> = [
      [{ headers: { 'content-type': 'application/json' }, body: '{"customer":' }, 400],
      [{ headers: { 'content-type': 'text/plain' }, body: 'hello' }, 400],
      [{ headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...anInvoice(), customer: 'x'.repeat(70_000) }) }, 413],
    ]
    for (const [init, status] of cases) {
      for (const key of [{}, withKey(randomUUID())]) {
        const response = await fetch(`${service.url}/invoices`, { method: 'POST', ...init, headers: { ...(init.headers as Record<string, string>), 'x-api-key': apiKey, ...key } })
        expect(response.status, String(init.body).slice(0, 40)).toBe(status)
        expect((await problemOf(response)).code).toBe('REQUEST_INVALID')
      }
    }
  })

  it('answers invalid payment amounts and invoice ids a database would refuse with a 400 problem', async () => {
    const invoice = await issueInvoice()
    for (const amount of [0, -5, 2.5, '10', null, MAX_AMOUNT + 1]) {
      const response = await post(`/invoices/${invoice}/payments`, { amount }, withKey(randomUUID()))
      expect(response.status, String(amount)).toBe(400)
      expect((await problemOf(response)).code).toBe('REQUEST_INVALID')
    }
    const someId = '0f8fad5b-d9cb-469f-a165-70867728950e'
    for (const id of [`urn:uuid:${someId}`, 'a%00b', '%F0%9F%92%A5', '%E0', 'not-an-id']) {
      for (const [method, path, body] of [
        ['GET', `/invoices/${id}`],
        ['DELETE', `/invoices/${id}`],
        ['POST', `/invoices/${id}/payments`, { amount: 1 }],
      ] as const) {
        const response = await send(method, path, body, withKey(randomUUID()))
        expect(response.status, `${method} ${path}`).toBe(400)
        expect((await problemOf(response)).code).toBe('REQUEST_INVALID')
      }
    }
    const unknown = await post(`/invoices/${someId}/payments`, { amount: 1 }, withKey(randomUUID()))
    expect(unknown.status).toBe(404)
    expect((await problemOf(unknown)).code).toBe('INVOICE_NOT_FOUND')
  })

  it('answers an unknown route with a 404 problem', async () => {
    const response = await send('GET', '/no/such/route')
    expect(response.status).toBe(404)
    expect((await problemOf(response)).code).toBe('NOT_FOUND')
  })
})
