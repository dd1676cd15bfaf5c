import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { describe, expect, it } from 'vitest'
import { createApiClient } from '../../examples/payments/api-clients.ts'
import type { PaymentsDatabase } from '../../examples/payments/schema.ts'
import { CUSTOMER_DELETION_QUEUE } from '../../src/jobs/index.ts'
import { usePaymentsApp } from '../support/payments-app.ts'
import { useTestDatabase } from '../support/test-database.ts'

// Scenario 1 of shared/scenarios.md as its client sees it, over real HTTP: a customer's
// requests belong to that customer, and deleting the customer deletes all of it.
const database = useTestDatabase<PaymentsDatabase>({ maxConnections: 20 })
const service = usePaymentsApp(database, { pollingIntervalSeconds: 0.5 })

type CustomerBody = { data: { customer_id: string; client_metadata: { idempotent_identifier: string } } }

const newClient = async () => (await createApiClient(database.db, `client-${randomUUID()}`)).apiKey
const asClient = (client: string, headers: Record<string, string> = {}) => ({ 'x-api-key': client, ...headers })
const post = (path: string, body: unknown, headers: Record<string, string>) =>
  fetch(service.url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
const createCustomer = (client: string, identifier: string) => post('/customers', { client_metadata: { idempotent_identifier: identifier } }, asClient(client))
const customerIdOf = async (response: Response) => ((await response.json()) as CustomerBody).data.customer_id

/** Every row of every table in every schema of the database (pg-boss's included) that holds `needle`. */
async function rowsHolding(needle: string): Promise<string[]> {
  const { rows: tables } = await sql<{ schema: string; table: string }>`
    select n.nspname as schema, c.relname as table
      from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where c.relkind in ('r', 'm') and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_toast%'
     order by 1, 2`.execute(database.db)
  expect(tables.map((t) => `${t.schema}.${t.table}`)).toEqual(expect.arrayContaining(['idempotency.idempotency_keys', 'idempotency.customer_deletions', 'public.financial_accounts', expect.stringMatching(/^pgboss\.job/)]))
  const found: string[] = []
  for (const { schema, table } of tables) {
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from ${sql.table(`${schema}.${table}`)} as t where strpos(t::text, ${needle}) > 0`.execute(database.db)
    if (rows[0]!.n > 0) found.push(`${schema}.${table}`)
  }
  return found
}

/** Waits until pg-boss has completed the customer's deletion job (and written its output). */
async function deletionJobCompleted(customerId: string): Promise<void> {
  for (;;) {
    const { rows } = await sql<{ state: string }>`
      select state from pgboss.job where name = ${CUSTOMER_DELETION_QUEUE} and data->>'customerId' = ${customerId}`.execute(database.db)
    if (rows[0]?.state === 'completed') return
    if (rows[0]?.state === 'failed') throw new Error('the deletion job failed')
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

describe('POST /customers', () => {
  it('names the new customer data.customer_id beside client_metadata.idempotent_identifier, on 201, 200 and GET', async () => {
    const client = await newClient()
    const identifier = `user-${randomUUID()}`
    const first = await createCustomer(client, identifier)
    expect(first.status).toBe(201)
    const created = (await first.json()) as CustomerBody
    expect(created.data.customer_id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)
    expect(created.data.client_metadata).toEqual({ idempotent_identifier: identifier })
    const again = await createCustomer(client, identifier)
    expect(again.status).toBe(200)
    expect(await customerIdOf(again)).toBe(created.data.customer_id)
    const found = await fetch(`${service.url}/customers?idempotent_identifier=${identifier}`, { headers: asClient(client) })
    expect(found.status).toBe(200)
    expect(await customerIdOf(found)).toBe(created.data.customer_id)
  })

  it('answers an unknown customer and an unknown deletion with problem details', async () => {
    const client = await newClient()
    const responses = [
      await fetch(`${service.url}/customers?idempotent_identifier=nobody`, { headers: asClient(client) }),
      await fetch(`${service.url}/customers/${randomUUID()}/deletion`, { headers: asClient(client) }),
    ]
    for (const response of responses) {
      expect(response.status).toBe(404)
      expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/)
      expect(((await response.json()) as { code: string }).code).toBe('CUSTOMER_NOT_FOUND')
    }
  })
})

describe('requests on behalf of a customer', () => {
  it("never replays one customer's response to another customer with the same key", async () => {
    const client = await newClient()
    const a = await customerIdOf(await createCustomer(client, `a-${randomUUID()}`))
    const b = await customerIdOf(await createCustomer(client, `b-${randomUUID()}`))
    const key = randomUUID()
    const first = await post('/financial/accounts', { name: 'savings' }, asClient(client, { 'idempotency-key': key, 'x-customer-id': a }))
    const second = await post('/financial/accounts', { name: 'savings' }, asClient(client, { 'idempotency-key': key, 'x-customer-id': b }))
    expect([first.status, second.status]).toEqual([201, 201])
    expect(second.headers.get('idempotent-replayed')).toBeNull()
    expect(((await first.json()) as { customer_id: string }).customer_id).toBe(a)
    expect(((await second.json()) as { customer_id: string }).customer_id).toBe(b)
  })

  it('deletes everything of a deleted customer: a retry of its key runs anew for the customer later made with its identifier', async () => {
    const client = await newClient()
    const identifier = `leaving-${randomUUID()}`
    const secret = `secret-${randomUUID()}`
    const onBehalf = asClient(client, { 'x-customer-idempotent-identifier': identifier })
    const customerId = await customerIdOf(await createCustomer(client, identifier))
    const key = randomUUID()
    const first = await post('/financial/accounts', { name: secret }, { ...onBehalf, 'idempotency-key': key })
    expect(first.status).toBe(201)
    const firstAccount = (await first.json()) as { id: string }
    expect(await rowsHolding(secret)).toEqual(['idempotency.idempotency_keys', 'public.financial_accounts'])

    const accepted = await fetch(`${service.url}/customers/idempotent-identifier/${identifier}`, { method: 'DELETE', headers: asClient(client) })
    expect(accepted.status).toBe(202)
    expect(((await accepted.json()) as { customer_id: string }).customer_id).toBe(customerId)
    await deletionJobCompleted(customerId)

    // Nothing anywhere still holds the client's identifier or what the customer's request stored.
    expect(await rowsHolding(identifier)).toEqual([])
    expect(await rowsHolding(secret)).toEqual([])
    // The customer is gone: its key does not replay.
    const gone = await post('/financial/accounts', { name: secret }, { ...onBehalf, 'idempotency-key': key })
    expect(gone.status).toBe(404)

    const recreated = await createCustomer(client, identifier)
    expect(recreated.status).toBe(201)
    const newId = await customerIdOf(recreated)
    expect(newId).not.toBe(customerId)
    const retry = await post('/financial/accounts', { name: secret }, { ...onBehalf, 'idempotency-key': key })
    expect(retry.status).toBe(201)
    expect(retry.headers.get('idempotent-replayed')).toBeNull()
    const account = (await retry.json()) as { id: string; customer_id: string }
    expect(account.customer_id).toBe(newId)
    expect(account.id).not.toBe(firstAccount.id)
  })
})
