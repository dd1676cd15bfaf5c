// Customers, deletion, the sweep and the migrations through a data layer that is not kysely (a
// PoolClient inside BEGIN, made with defineDatabase), on a pool that parses no type: every value
// still comes back as its type says.
import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import type pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createCustomerIn,
  deleteCustomerData,
  findCustomerIn,
  getCustomerDeletion,
  grantAccess,
  IdempotencyErrorCode,
  migrate,
  resolveCustomerIn,
  sweepExpiredKeys,
  type IdempotencyDatabase,
} from '../src/index.ts'
import { pgDatabase, textOnlyPool } from './support/pg-database.ts'
import { useTestDatabase } from './support/test-database.ts'

const test = useTestDatabase()
let pool: pg.Pool
let database: IdempotencyDatabase<pg.PoolClient>

beforeAll(() => {
  pool = textOnlyPool(test.url)
  database = pgDatabase(pool)
})
afterAll(() => pool?.end())

const create = (clientId: string, idempotentIdentifier: string) =>
  database.transaction((tx) => createCustomerIn(database.session(tx), { clientId, idempotentIdentifier, context: { region: 'eu' } }))

async function createdAtInDatabase(customerId: string): Promise<Date> {
  const { rows } = await sql<{ created_at: Date }>`select created_at from idempotency.customers where customer_id = ${customerId}::uuid`.execute(test.db)
  return rows[0]!.created_at
}

it('runs on a pool that returns timestamps as strings (what the tests below rely on)', async () => {
  const { rows } = await pool.query('select now() as at, 1::int8 as n')
  expect(typeof rows[0].at).toBe('string')
  expect(typeof rows[0].n).toBe('string')
})

describe('customers on any data layer', () => {
  it('creates once and then returns the same customer, its createdAt a Date', async () => {
    const client = randomUUID()
    const first = await create(client, 'user-1')
    expect(first.created).toBe(true)
    expect(first.customer.createdAt).toBeInstanceOf(Date)
    expect(first.customer.createdAt.getTime()).toBe((await createdAtInDatabase(first.customer.customerId)).getTime())
    expect(first.customer).toMatchObject({ clientId: client, idempotentIdentifier: 'user-1', context: { region: 'eu' }, status: 'active' })
    const again = await create(client, 'user-1')
    expect(again).toEqual({ customer: first.customer, created: false })
  })

  it('finds by identifier or by id, in the caller transaction or in one of its own', async () => {
    const client = randomUUID()
    const { customer } = await create(client, 'user-2')
    expect(await findCustomerIn(database, { clientId: client, idempotentIdentifier: 'user-2' })).toEqual(customer)
    const inTransaction = await database.transaction((tx) => findCustomerIn(database.session(tx), { clientId: client, customerId: customer.customerId }))
    expect(inTransaction).toEqual(customer)
    expect(inTransaction!.createdAt).toBeInstanceOf(Date)
    expect(await findCustomerIn(database, { clientId: randomUUID(), idempotentIdentifier: 'user-2' })).toBeUndefined()
  })

  it('resolves in the caller transaction and holds the row against deletion until it ends', async () => {
    const client = randomUUID()
    const { customer } = await create(client, 'user-3')
    await database.transaction(async (tx) => {
      const resolved = await resolveCustomerIn(database.session(tx), { clientId: client, idempotentIdentifier: 'user-3' })
      expect(resolved).toEqual(customer)
      // The deletion's last step locks the row for update: it cannot while this transaction holds it.
      const locked = sql`select 1 from idempotency.customers where customer_id = ${customer.customerId}::uuid for update nowait`.execute(test.db)
      await expect(locked).rejects.toMatchObject({ code: '55P03' })
    })
    await expect(resolveCustomerIn(database, { clientId: client, idempotentIdentifier: 'nobody' })).rejects.toMatchObject({
      code: IdempotencyErrorCode.CUSTOMER_NOT_FOUND,
    })
  })
})

describe('deletion, sweep and migrations on any data layer', () => {
  it('deletes a customer with its rows and reports progress with Dates and numbers', async () => {
    await sql`create table layer_orders (id bigserial primary key, customer_id uuid not null references idempotency.customers)`.execute(test.db)
    const client = randomUUID()
    const { customer } = await create(client, 'leaving')
    await sql`insert into layer_orders (customer_id) select ${customer.customerId}::uuid from generate_series(1, 7)`.execute(test.db)
    await sql`update idempotency.customers set status = 'deleting' where customer_id = ${customer.customerId}::uuid`.execute(test.db)
    await sql`insert into idempotency.customer_deletions (customer_id, client_id) values (${customer.customerId}::uuid, ${client})`.execute(test.db)

    const done = await deleteCustomerData(database, customer.customerId, { batchSize: 3 })
    expect(done).toMatchObject({ customerId: customer.customerId, clientId: client, state: 'done' })
    expect(done.deletedRows).toEqual({ 'public.layer_orders': 7, 'idempotency.customers': 1 })
    for (const at of [done.requestedAt, done.startedAt, done.finishedAt]) expect(at).toBeInstanceOf(Date)
    expect(done.finishedAt!.getTime()).toBeGreaterThanOrEqual(done.requestedAt.getTime())
    expect(await getCustomerDeletion(database, customer.customerId)).toEqual(done)
    expect(await findCustomerIn(database, { clientId: client, customerId: customer.customerId })).toBeUndefined()
  })

  it('sweeps expired keys in batches and counts them', async () => {
    const scope = `sweep-${randomUUID()}`
    await sql`
      insert into idempotency.idempotency_keys (scope, key, fingerprint, status, response, completed_at, expires_at)
      select ${scope}, 'k' || i, sha256(i::text::bytea), 'completed', '{}', now(), now() - interval '1 minute'
        from generate_series(1, 25) i`.execute(test.db)
    expect(await sweepExpiredKeys(database, { batchSize: 10 })).toBeGreaterThanOrEqual(25)
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from idempotency.idempotency_keys where scope = ${scope}`.execute(test.db)
    expect(rows[0]!.n).toBe(0)
  })

  it('grants a role what the library needs', async () => {
    const role = `layer_app_${randomUUID().slice(0, 8)}`
    await sql`create role ${sql.id(role)}`.execute(test.db)
    await grantAccess(database, { role })
    const { rows } = await pool.query("select has_table_privilege($1, 'idempotency.idempotency_keys', 'insert')::text as granted", [role])
    expect(rows).toEqual([{ granted: 'true' }])
    await sql`drop owned by ${sql.id(role)}`.execute(test.db)
    await sql`drop role ${sql.id(role)}`.execute(test.db)
  })

  it('migrates a schema of its own, once', async () => {
    const schema = `layer_${randomUUID().slice(0, 8)}`
    const first = await migrate(database, { schema })
    expect(first.applied.length).toBeGreaterThan(0)
    expect(first.version).toBe(Number(first.applied.at(-1)!.slice(0, 4)))
    expect(await migrate(database, { schema })).toEqual({ applied: [], version: first.version })
  })
})
