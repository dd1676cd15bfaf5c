import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { describe, expect, it } from 'vitest'
import { createCustomer, findCustomer, IdempotencyErrorCode, personalDataKind, resolveCustomer } from '../src/index.ts'
import { useTestDatabase } from './support/test-database.ts'

const database = useTestDatabase({ maxConnections: 50 })

const create = (clientId: string, idempotentIdentifier: string, extra: Record<string, unknown> = {}) =>
  database.db.transaction().execute((tx) => createCustomer(tx, { clientId, idempotentIdentifier, ...extra }))

async function customersOf(clientId: string): Promise<number> {
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from idempotency.customers where client_id = ${clientId}`.execute(database.db)
  return rows[0]!.n
}

describe('createCustomer', () => {
  it('creates once (created: true, a server-made UUID), then returns the same customer unchanged', async () => {
    const client = randomUUID()
    const first = await create(client, 'user-123', { context: { type: 'individual', region: 'eu', locale: 'en-GB' } })
    expect(first.created).toBe(true)
    expect(first.customer.customerId).toMatch(/^[0-9a-f-]{36}$/)
    expect(first.customer.context).toEqual({ type: 'individual', region: 'eu', locale: 'en-GB' })
    const again = await create(client, 'user-123', { context: { type: 'business', region: 'us' } })
    expect(again.created).toBe(false)
    expect(again.customer).toEqual(first.customer)
    expect(await customersOf(client)).toBe(1)
  })

  it('keeps identifiers per client: two clients may use the same one', async () => {
    const [a, b] = [randomUUID(), randomUUID()]
    const ca = await create(a, 'shared')
    const cb = await create(b, 'shared')
    expect(ca.customer.customerId).not.toBe(cb.customer.customerId)
  })

  it('makes exactly one customer from two hundred concurrent creates', async () => {
    const client = randomUUID()
    const results = await Promise.all(Array.from({ length: 200 }, () => create(client, 'racer')))
    expect(results.filter((r) => r.created)).toHaveLength(1)
    expect(new Set(results.map((r) => r.customer.customerId)).size).toBe(1)
    expect(await customersOf(client)).toBe(1)
  })

  it('under REPEATABLE READ, racing creates either find the winner or get a retryable error, never a second customer', async () => {
    const client = randomUUID()
    const attempt = () =>
      database.db
        .transaction()
        .setIsolationLevel('repeatable read')
        .execute(async (tx) => {
          await sql`select 1`.execute(tx)
          return createCustomer(tx, { clientId: client, idempotentIdentifier: 'rr' })
        })
        .then((r) => r, (error: unknown) => error)
    const results = await Promise.all(Array.from({ length: 30 }, attempt))
    for (const result of results) {
      if (result instanceof Error) expect(result).toMatchObject({ code: IdempotencyErrorCode.SNAPSHOT_CONFLICT, retryable: true })
    }
    expect(await customersOf(client)).toBe(1)
  })

  it.each([
    ['an e-mail address', 'jane.doe@example.com', 'email'],
    ['a phone number', '+44 7700 900123', 'phone'],
    ['a US social security number', '123-45-6789', 'us-ssn'],
    ['a UK national insurance number', 'AB 12 34 56 C', 'uk-nino'],
    ['a date of birth', 'user-1985-04-12', 'date'],
    ['a payment card number', '4111 1111 1111 1111', 'payment-card'],
  ])('refuses %s as an identifier, unless the client opted out', async (_name, identifier, kind) => {
    const client = randomUUID()
    await expect(create(client, identifier)).rejects.toMatchObject({ code: IdempotencyErrorCode.CUSTOMER_IDENTIFIER_PERSONAL_DATA, httpStatus: 400, kind })
    expect((await create(client, identifier, { allowPersonalData: true })).created).toBe(true)
  })

  it('accepts identifiers holding UUIDs, whose digit groups can look like phone or card numbers', async () => {
    for (const identifier of ['user-8f0e4a12-0412-4987-9123-456789012345', '41111111-1111-1111-1111-111111111111']) {
      expect(personalDataKind(identifier)).toBeUndefined()
    }
    for (let i = 0; i < 2000; i++) expect(personalDataKind(`user-${randomUUID()}`)).toBeUndefined()
  })

  it.each([
    ['empty', ''],
    ['too long', 'x'.repeat(256)],
    ['with a control character', 'a\nb'],
  ])('refuses an identifier that is %s', async (_name, identifier) => {
    await expect(create(randomUUID(), identifier)).rejects.toMatchObject({ code: IdempotencyErrorCode.CUSTOMER_IDENTIFIER_INVALID, httpStatus: 400 })
  })

  it('refuses a context field that breaks the rules with a 400, not a database error', async () => {
    for (const context of [{ region: '' }, { type: 'x'.repeat(65) }, { locale: 'en\u0000GB' }]) {
      await expect(create(randomUUID(), 'ctx', { context })).rejects.toMatchObject({ code: IdempotencyErrorCode.CUSTOMER_IDENTIFIER_INVALID, httpStatus: 400 })
    }
  })
})

describe('finding the customer a request is for', () => {
  it('finds by identifier or by id, within the client only', async () => {
    const client = randomUUID()
    const { customer } = await create(client, 'findme')
    expect(await findCustomer(database.db, { clientId: client, idempotentIdentifier: 'findme' })).toEqual(customer)
    expect(await findCustomer(database.db, { clientId: client, customerId: customer.customerId })).toEqual(customer)
    expect(await findCustomer(database.db, { clientId: randomUUID(), customerId: customer.customerId })).toBeUndefined()
  })

  it('answers 400 for both headers or neither or a bad id, 404 for nobody, 410 for a customer being deleted', async () => {
    const client = randomUUID()
    const { customer } = await create(client, 'resolve-me')
    await expect(resolveCustomer(database.db, { clientId: client, customerId: customer.customerId, idempotentIdentifier: 'resolve-me' })).rejects.toMatchObject({
      code: IdempotencyErrorCode.CUSTOMER_REFERENCE_INVALID,
      httpStatus: 400,
    })
    await expect(resolveCustomer(database.db, { clientId: client })).rejects.toMatchObject({ httpStatus: 400 })
    await expect(resolveCustomer(database.db, { clientId: client, customerId: 'nope' })).rejects.toMatchObject({ httpStatus: 400 })
    await expect(resolveCustomer(database.db, { clientId: client, idempotentIdentifier: 'nobody' })).rejects.toMatchObject({
      code: IdempotencyErrorCode.CUSTOMER_NOT_FOUND,
      httpStatus: 404,
    })
    await sql`update idempotency.customers set status = 'deleting' where customer_id = ${customer.customerId}`.execute(database.db)
    await expect(resolveCustomer(database.db, { clientId: client, idempotentIdentifier: 'resolve-me' })).rejects.toMatchObject({
      code: IdempotencyErrorCode.CUSTOMER_DELETING,
      httpStatus: 410,
    })
    // The identifier stays taken while the deletion runs.
    await expect(create(client, 'resolve-me')).rejects.toMatchObject({ code: IdempotencyErrorCode.CUSTOMER_DELETING, httpStatus: 409 })
  })
})
