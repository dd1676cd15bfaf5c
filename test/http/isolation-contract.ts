import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createCustomer } from '../../src/index.ts'
import { useTestDatabase } from '../support/test-database.ts'
import { Latch, lockWatcher } from '../support/concurrency.ts'
import { createItemsTable, type ContractRoute } from './contract-routes.ts'
import type { RunningServer, StartServer } from './servers.ts'
import { kyselyHttp, type HttpLayer } from './contract-layers.ts'


const held: { latch?: Latch } = {}

/** Routes scoped per route and per client, with and without a customer. */
export const isolationRoutes: ContractRoute[] = [
  {
    method: 'post',
    path: '/iso/items',
    policy: { required: true },
    handler: async ({ insertItem, body }) => ({ status: 201, body: { id: (await insertItem(body.name)).id, name: body.name } }),
  },
  {
    method: 'post',
    path: '/iso/conflict',
    policy: { onMismatch: 'conflict' },
    handler: async ({ insertItem, body }) => ({ status: 201, body: { id: (await insertItem(body.name)).id, name: body.name } }),
  },
  {
    method: 'post',
    path: '/iso/requests',
    policy: { header: 'x-request-id', keyFormat: 'uuid', onMismatch: 'replay', scope: 'client' },
    handler: async ({ insertItem, body }) => ({ status: 201, body: { id: (await insertItem(body.name)).id, name: body.name } }),
  },
  {
    method: 'post',
    path: '/iso/customer-items',
    policy: { customer: true },
    handler: async ({ insertItem, body, customer }) => ({ status: 201, body: { id: (await insertItem(body.name)).id, customerId: customer?.customerId } }),
  },
  {
    method: 'post',
    path: '/iso/customer-requests',
    policy: { customer: true, header: 'x-request-id', keyFormat: 'uuid', scope: 'client' },
    handler: async ({ insertItem, body, customer }) => ({ status: 201, body: { id: (await insertItem(body.name)).id, customerId: customer?.customerId } }),
  },
  ...(['serializable', 'repeatable read'] as const).map(
    (isolation): ContractRoute => ({
      method: 'post',
      path: `/iso/customer-${isolation.replace(' ', '-')}`,
      policy: { customer: true, isolation, onConcurrent: 'wait' },
      handler: async ({ insertItem, body, customer }) => {
        const id = (await insertItem(body.name)).id
        await held.latch?.hold()
        return { status: 201, body: { id, customerId: customer?.customerId } }
      },
    }),
  ),
  {
    method: 'get',
    path: '/iso/customer',
    policy: { customer: true },
    handler: async ({ customer }) => ({ status: 200, body: { customerId: customer?.customerId } }),
  },
]

/**
 * Isolation between clients and between customers, over real HTTP, for every adapter: a client
 * id can never name another client's keys, the client never comes back in a response or sits in
 * the key table, and a request made on behalf of a customer belongs to that customer.
 */
export function describeIsolationContract(framework: string, start: StartServer, layer: HttpLayer = kyselyHttp): void {
  const database = useTestDatabase()
  let server: RunningServer
  let app: ReturnType<HttpLayer['open']> | undefined
  if (layer !== kyselyHttp) framework = `${framework} on ${layer.name}`

  beforeAll(async () => {
    await createItemsTable(database.db)
    app = layer.open(database.url)
    server = await start(app, isolationRoutes)
  })
  afterAll(async () => {
    await server?.close()
    await app?.close()
  })

  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(server.url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
  const items = async (name: string) =>
    (await sql<{ n: number }>`select count(*)::int as n from items where name = ${name}`.execute(database.db)).rows[0]!.n
  const storedScopes = async (key: string) =>
    (await sql<{ scope: string }>`select scope from idempotency.idempotency_keys where key = ${key}`.execute(database.db)).rows.map((r) => r.scope)

  describe(`${framework}: one client can never reach another's keys`, () => {
    // Client ids that spell out another client's scope in the old `client:<id> <METHOD> <route>`
    // form, or try to break out of a quoted or delimited encoding.
    const impersonations = (victim: string) => [
      `${victim} POST /iso/items`,
      `${victim} POST /iso/items `,
      `${victim}\tPOST /iso/items`,
      `${victim}","POST","/iso/items`,
      `${victim}\\","POST","/iso/items`,
      `${victim}"]`,
      `client:${victim}`,
    ]

    it("a client id holding the victim's scope parts neither reads the victim's stored response nor pre-claims its key", async () => {
      for (const attacker of impersonations(`victim-${randomUUID()}`)) {
        const victim = attacker.split(/[ \t"\\]/)[0]!.replace(/^client:/, '')
        // The victim's key on a route scoped by route; the attacker replays it on a route scoped
        // by client (where a repeat even with another body replays).
        const key = randomUUID()
        const secret = `link-token-${randomUUID()}`
        const first = await post('/iso/items', { name: secret }, { 'idempotency-key': key, 'x-api-key': victim })
        expect(first.status).toBe(201)
        const read = await post('/iso/requests', { name: 'attacker' }, { 'x-request-id': key, 'x-api-key': attacker })
        expect(read.status).toBe(201)
        expect(read.headers.get('idempotent-replayed')).toBeNull()
        expect(await read.text()).not.toContain(secret)

        // Pre-claiming: the attacker uses the victim's next key first; the victim's request still runs.
        const next = randomUUID()
        const claimed = await post('/iso/requests', { name: 'squatter' }, { 'x-request-id': next, 'x-api-key': attacker })
        expect(claimed.status).toBe(201)
        const own = await post('/iso/items', { name: `own-${next}` }, { 'idempotency-key': next, 'x-api-key': victim })
        expect(own.status).toBe(201)
        expect(own.headers.get('idempotent-replayed')).toBeNull()
        expect(await items(`own-${next}`)).toBe(1)
      }
    })

    it('keeps the anonymous caller apart from a client whose id reads "anonymous"', async () => {
      const key = randomUUID()
      const secret = `anon-${randomUUID()}`
      expect((await post('/iso/requests', { name: secret }, { 'x-request-id': key })).status).toBe(201)
      for (const impostor of ['anonymous', 'null', 'undefined']) {
        const response = await post('/iso/requests', { name: 'impostor' }, { 'x-request-id': key, 'x-api-key': impostor })
        expect(response.headers.get('idempotent-replayed')).toBeNull()
        expect(await response.text()).not.toContain(secret)
      }
    })
  })

  describe(`${framework}: the client is not stored or echoed`, () => {
    it('leaves the client and the scope out of 422 and 409 problems, and out of the stored scope', async () => {
      const client = `sk_live_${randomUUID().replaceAll('-', '')}`
      const key = randomUUID()
      expect((await post('/iso/items', { name: 'one' }, { 'idempotency-key': key, 'x-api-key': client })).status).toBe(201)
      const [scope] = await storedScopes(key)
      expect(scope).toBeDefined()
      expect(scope).not.toContain(client)
      expect(scope).not.toContain(client.slice(8))

      const mismatch = await post('/iso/items', { name: 'two' }, { 'idempotency-key': key, 'x-api-key': client })
      expect(mismatch.status).toBe(422)
      const text = await mismatch.text()
      expect(text).not.toContain(client)
      expect(text).not.toContain(scope!)
      expect(text).not.toContain('scope')

      const other = randomUUID()
      expect((await post('/iso/conflict', { name: 'one' }, { 'idempotency-key': other, 'x-api-key': client })).status).toBe(201)
      const conflict = await post('/iso/conflict', { name: 'two' }, { 'idempotency-key': other, 'x-api-key': client })
      expect(conflict.status).toBe(409)
      const conflictText = await conflict.text()
      expect(conflictText).not.toContain(client)
      expect(conflictText).not.toContain((await storedScopes(other))[0]!)
    })
  })

  describe(`${framework}: a request on behalf of a customer belongs to that customer`, () => {
    const newCustomer = async (clientId: string, identifier = `c-${randomUUID()}`) =>
      (await database.db.transaction().execute((tx) => createCustomer(tx, { clientId, idempotentIdentifier: identifier }))).customer

    it("does not replay one customer's response to another with the same key, and stores the customer id with the key", async () => {
      const client = `client-${randomUUID()}`
      const a = await newCustomer(client)
      const b = await newCustomer(client)
      const key = randomUUID()
      const name = `shared-${randomUUID()}`
      const first = await post('/iso/customer-items', { name }, { 'idempotency-key': key, 'x-api-key': client, 'x-customer-id': a.customerId })
      const second = await post('/iso/customer-items', { name }, { 'idempotency-key': key, 'x-api-key': client, 'x-customer-idempotent-identifier': b.idempotentIdentifier })
      expect([first.status, second.status]).toEqual([201, 201])
      expect(second.headers.get('idempotent-replayed')).toBeNull()
      expect(((await first.json()) as { customerId: string }).customerId).toBe(a.customerId)
      expect(((await second.json()) as { customerId: string }).customerId).toBe(b.customerId)
      expect(await items(name)).toBe(2)
      // The same customer, by either header, is one key.
      const again = await post('/iso/customer-items', { name }, { 'idempotency-key': key, 'x-api-key': client, 'x-customer-idempotent-identifier': a.idempotentIdentifier })
      expect(again.headers.get('idempotent-replayed')).toBe('true')
      const { rows } = await sql<{ customer_id: string }>`select customer_id::text from idempotency.idempotency_keys where key = ${key} order by customer_id`.execute(database.db)
      expect(rows.map((r) => r.customer_id)).toEqual([a.customerId, b.customerId].sort())
    })

    it('keeps request ids of a client-wide scope apart per customer', async () => {
      const client = `client-${randomUUID()}`
      const [a, b] = [await newCustomer(client), await newCustomer(client)]
      const id = randomUUID()
      const first = await post('/iso/customer-requests', { name: 'x' }, { 'x-request-id': id, 'x-api-key': client, 'x-customer-id': a.customerId })
      const second = await post('/iso/customer-requests', { name: 'x' }, { 'x-request-id': id, 'x-api-key': client, 'x-customer-id': b.customerId })
      expect(second.headers.get('idempotent-replayed')).toBeNull()
      expect(((await second.json()) as { customerId: string }).customerId).toBe(b.customerId)
      expect(((await first.json()) as { customerId: string }).customerId).toBe(a.customerId)
    })

    it("does not find another client's customer", async () => {
      const owner = await newCustomer(`owner-${randomUUID()}`)
      const response = await post('/iso/customer-items', { name: 'x' }, { 'idempotency-key': randomUUID(), 'x-api-key': `other-${randomUUID()}`, 'x-customer-id': owner.customerId })
      expect(response.status).toBe(404)
    })

    it('answers the customer errors as problem details, with or without a key and on GET, never 500', async () => {
      const client = `client-${randomUUID()}`
      const customer = await newCustomer(client)
      const leaving = await newCustomer(client)
      await sql`update idempotency.customers set status = 'deleting' where customer_id = ${leaving.customerId}::uuid`.execute(database.db)
      const cases: Array<[Record<string, string>, number, string]> = [
        [{ 'x-customer-id': customer.customerId, 'x-customer-idempotent-identifier': customer.idempotentIdentifier }, 400, 'CUSTOMER_REFERENCE_INVALID'],
        [{}, 400, 'CUSTOMER_REFERENCE_INVALID'],
        [{ 'x-customer-id': 'not-a-uuid' }, 400, 'CUSTOMER_REFERENCE_INVALID'],
        [{ 'x-customer-id': randomUUID() }, 404, 'CUSTOMER_NOT_FOUND'],
        [{ 'x-customer-idempotent-identifier': 'nobody-here' }, 404, 'CUSTOMER_NOT_FOUND'],
        [{ 'x-customer-id': leaving.customerId }, 410, 'CUSTOMER_DELETING'],
      ]
      for (const [customerHeaders, status, code] of cases) {
        const headers = { 'x-api-key': client, ...customerHeaders }
        const responses = [
          await post('/iso/customer-items', { name: 'refused' }, { ...headers, 'idempotency-key': randomUUID() }),
          await post('/iso/customer-items', { name: 'refused' }, headers),
          await fetch(server.url + '/iso/customer', { headers }),
        ]
        for (const response of responses) {
          expect(response.status, `${JSON.stringify(customerHeaders)}`).toBe(status)
          expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/)
          expect(((await response.json()) as { code: string }).code).toBe(code)
        }
      }
      // An anonymous caller has no customers.
      const anonymous = await post('/iso/customer-items', { name: 'refused' }, { 'x-customer-id': customer.customerId })
      expect(anonymous.status).toBe(404)
      expect(await items('refused')).toBe(0)
    })

    for (const isolation of ['serializable', 'repeatable-read']) {
      it(`runs a key once for concurrent twins of one customer under ${isolation}, and apart for another customer`, async () => {
        const client = `client-${randomUUID()}`
        const [a, b] = [await newCustomer(client), await newCustomer(client)]
        const key = randomUUID()
        const name = `twin-${randomUUID()}`
        const send = (customerId: string) =>
          post(`/iso/customer-${isolation}`, { name }, { 'idempotency-key': key, 'x-api-key': client, 'x-customer-id': customerId })
        const latch = (held.latch = new Latch())
        const first = send(a.customerId)
        await latch.entered
        const twins = Array.from({ length: 4 }, () => send(a.customerId))
        const other = send(b.customerId)
        // Every twin is queued on the key before the first commits.
        const watcher = await lockWatcher(database.url)
        await watcher.untilWaiting(4).finally(() => watcher.close())
        latch.release()
        const responses = await Promise.all([first, ...twins])
        held.latch = undefined
        expect(responses.map((r) => r.status)).toEqual([201, 201, 201, 201, 201])
        expect(responses.filter((r) => r.headers.get('idempotent-replayed') === 'true')).toHaveLength(4)
        const bodies = await Promise.all(responses.map((r) => r.text()))
        expect(new Set(bodies).size).toBe(1)
        const forB = await other
        expect(forB.status).toBe(201)
        expect(((await forB.json()) as { customerId: string }).customerId).toBe(b.customerId)
        expect(await items(name)).toBe(2)
      })
    }

    it('hands the customer to a handler on a method that takes no key', async () => {
      const client = `client-${randomUUID()}`
      const customer = await newCustomer(client)
      const response = await fetch(server.url + '/iso/customer', { headers: { 'x-api-key': client, 'x-customer-idempotent-identifier': customer.idempotentIdentifier } })
      expect(response.status).toBe(200)
      expect(await response.json()).toEqual({ customerId: customer.customerId })
    })
  })
}
