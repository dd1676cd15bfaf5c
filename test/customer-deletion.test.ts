import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import type { PgBoss } from 'pg-boss'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createCustomer, deleteCustomerData, getCustomerDeletion, IdempotencyErrorCode, resolveCustomer, withIdempotency } from '../src/index.ts'
import { CUSTOMER_DELETION_QUEUE, requestCustomerDeletion } from '../src/jobs/index.ts'
import { Latch } from './support/concurrency.ts'
import { useTestDatabase } from './support/test-database.ts'
import { startDeletionBoss, stopBoss } from './support/deletion-boss.ts'

const database = useTestDatabase({ maxConnections: 20 })
let boss: PgBoss
// audit_log has no foreign key to the customers table: the application registers it.
const tables = [{ table: 'audit_log', column: 'customer_id' }]

beforeAll(async () => {
  await sql`
    create table orders (id bigserial primary key, customer_id uuid not null references idempotency.customers, total int not null);
    create index on orders (customer_id);
    create table order_items (id bigserial primary key, order_id bigint not null references orders, sku text not null);
    create index on order_items (order_id);
    create table audit_log (id bigserial primary key, customer_id uuid not null, event text not null);
    create index on audit_log (customer_id);`.execute(database.db)
  boss = await startDeletionBoss(database.url, 4)
})
afterAll(async () => {
  await stopBoss(boss)
})

/** A customer with orders, two items per order, audit rows and idempotency keys. */
async function customerWithData(orders: number) {
  const clientId = randomUUID()
  const identifier = `user-${randomUUID()}`
  const { customer } = await database.db.transaction().execute((tx) => createCustomer(tx, { clientId, idempotentIdentifier: identifier }))
  const id = customer.customerId
  await sql`
    with o as (insert into orders (customer_id, total) select ${id}::uuid, i from generate_series(1, ${orders}) i returning id)
    insert into order_items (order_id, sku) select o.id, s from o, (values ('a'), ('b')) v(s)`.execute(database.db)
  await sql`insert into audit_log (customer_id, event) select ${id}::uuid, 'e' || i from generate_series(1, ${orders}) i`.execute(database.db)
  for (let i = 0; i < 3; i++) {
    await database.db.transaction().execute((tx) => withIdempotency(tx, { key: randomUUID(), customerId: id }, async () => 'ok'))
  }
  return { clientId, identifier, id }
}

async function rowsOf(id: string) {
  const { rows } = await sql<{ orders: number; items: number; audit: number; keys: number; customers: number }>`
    select (select count(*)::int from orders where customer_id = ${id}::uuid) as orders,
           (select count(*)::int from order_items i join orders o on o.id = i.order_id where o.customer_id = ${id}::uuid) as items,
           (select count(*)::int from audit_log where customer_id = ${id}::uuid) as audit,
           (select count(*)::int from idempotency.idempotency_keys where customer_id = ${id}::uuid) as keys,
           (select count(*)::int from idempotency.customers where customer_id = ${id}::uuid) as customers`.execute(database.db)
  return rows[0]!
}

async function queuedJobs(id: string): Promise<number> {
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from pgboss.job where name = ${CUSTOMER_DELETION_QUEUE} and data->>'customerId' = ${id}`.execute(database.db)
  return rows[0]!.n
}

describe('requestCustomerDeletion', () => {
  it('marks the customer and enqueues one job in the same transaction; a repeat enqueues nothing', async () => {
    const { clientId, identifier, id } = await customerWithData(1)
    expect(await requestCustomerDeletion(database.db, boss, { clientId, idempotentIdentifier: identifier })).toEqual({ customerId: id, enqueued: true })
    expect(await requestCustomerDeletion(database.db, boss, { clientId, customerId: id })).toEqual({ customerId: id, enqueued: false })
    expect(await queuedJobs(id)).toBe(1)
    expect((await getCustomerDeletion(database.db, id))?.state).toBe('queued')
    // The identifier stays taken until the deletion finishes.
    const again = database.db.transaction().execute((tx) => createCustomer(tx, { clientId, idempotentIdentifier: identifier }))
    await expect(again).rejects.toMatchObject({ code: IdempotencyErrorCode.CUSTOMER_DELETING })
  })

  it('leaves neither mark nor job when the surrounding transaction rolls back', async () => {
    const { clientId, identifier, id } = await customerWithData(1)
    const rollback = new Error('roll back')
    await expect(
      database.db.transaction().execute(async (tx) => {
        await requestCustomerDeletion(tx, boss, { clientId, idempotentIdentifier: identifier })
        throw rollback
      }),
    ).rejects.toBe(rollback)
    expect(await queuedJobs(id)).toBe(0)
    expect(await getCustomerDeletion(database.db, id)).toBeUndefined()
  })

  it('enqueues once however many requests race', async () => {
    const { clientId, id } = await customerWithData(1)
    const results = await Promise.all(Array.from({ length: 10 }, () => requestCustomerDeletion(database.db, boss, { clientId, customerId: id })))
    expect(results.filter((r) => r.enqueued)).toHaveLength(1)
    expect(await queuedJobs(id)).toBe(1)
  })

  it('answers 404 for an unknown customer', async () => {
    await expect(requestCustomerDeletion(database.db, boss, { clientId: randomUUID(), idempotentIdentifier: 'nobody' })).rejects.toMatchObject({ httpStatus: 404 })
  })
})

describe('deleteCustomerData', () => {
  it('waits for a transaction that resolved the customer, then deletes the key it stored', async () => {
    const { clientId, id } = await customerWithData(1)
    const latch = new Latch()
    const key = randomUUID()
    // A request that found the customer active, and stores its key (no foreign key to customers)
    // only after the deletion has started.
    const request = database.db.transaction().execute(async (tx) => {
      await resolveCustomer(tx, { clientId, customerId: id })
      await latch.hold()
      return withIdempotency(tx, { key, customerId: id }, async () => ({ secret: key }))
    })
    await latch.entered
    await requestCustomerDeletion(database.db, boss, { clientId, customerId: id })
    let settled = false
    const deletion = deleteCustomerData(database.db, id, { tables }).finally(() => (settled = true))
    // Until the deletion either finished (it did not wait) or waits on a row lock.
    const waitingOnLock = async () =>
      (await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`.execute(database.db)).rows[0]!.n > 0
    while (!settled && !(await waitingOnLock())) await new Promise((resolve) => setTimeout(resolve, 5))
    latch.release()
    await request
    expect((await deletion).state).toBe('done')
    expect(await rowsOf(id)).toEqual({ orders: 0, items: 0, audit: 0, keys: 0, customers: 0 })
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from idempotency.idempotency_keys where key = ${key}`.execute(database.db)
    expect(rows[0]!.n).toBe(0)
  })

  it("never touches another customer's row in another partition (a ctid is unique only within one)", async () => {
    await sql`
      create table events_by_year (customer_id uuid not null, year int not null, note text) partition by list (year);
      create table events_2024 partition of events_by_year for values in (2024);
      create table events_2025 partition of events_by_year for values in (2025);
      create table replies (id bigserial primary key, customer_id uuid not null references idempotency.customers, parent_id bigint references replies);`.execute(database.db)
    const bystander = await customerWithData(1)
    const { clientId, id } = await customerWithData(1)
    // The first row of each partition: both have ctid (0,1).
    await sql`insert into events_2024 values (${id}::uuid, 2024, 'mine')`.execute(database.db)
    await sql`insert into events_2025 values (${bystander.id}::uuid, 2025, 'theirs')`.execute(database.db)
    // A table that references itself: replies to replies.
    let parent: string | null = null
    for (let i = 0; i < 30; i++) {
      const { rows } = await sql<{ id: string }>`insert into replies (customer_id, parent_id) values (${id}::uuid, ${parent}::bigint) returning id::text`.execute(database.db)
      parent = rows[0]!.id
    }
    await requestCustomerDeletion(database.db, boss, { clientId, customerId: id })
    const done = await deleteCustomerData(database.db, id, { tables: [...tables, { table: 'events_by_year', column: 'customer_id' }], batchSize: 4 })
    expect(done.state).toBe('done')
    expect(done.deletedRows).toMatchObject({ 'public.events_by_year': 1, 'public.replies': 30 })
    const { rows } = await sql<{ note: string }>`select note from events_by_year order by note`.execute(database.db)
    expect(rows).toEqual([{ note: 'theirs' }])
  })

  it('deletes children first through the foreign keys, the registered tables and the keys, then frees the identifier', async () => {
    const bystander = await customerWithData(5)
    const { clientId, identifier, id } = await customerWithData(40)
    await requestCustomerDeletion(database.db, boss, { clientId, customerId: id })
    const done = await deleteCustomerData(database.db, id, { tables, batchSize: 7 })
    expect(done.state).toBe('done')
    expect(done.deletedRows).toEqual({
      'public.order_items': 80,
      'public.orders': 40,
      'public.audit_log': 40,
      'idempotency.idempotency_keys': 3,
      'idempotency.customers': 1,
    })
    expect(await rowsOf(id)).toEqual({ orders: 0, items: 0, audit: 0, keys: 0, customers: 0 })
    expect(await rowsOf(bystander.id)).toEqual({ orders: 5, items: 10, audit: 5, keys: 3, customers: 1 })
    // The identifier is free: a new create makes a fresh customer with no link to the old one.
    const fresh = await database.db.transaction().execute((tx) => createCustomer(tx, { clientId, idempotentIdentifier: identifier }))
    expect(fresh.created).toBe(true)
    expect(fresh.customer.customerId).not.toBe(id)
    // Running it again changes nothing.
    expect(await deleteCustomerData(database.db, id, { tables })).toEqual(done)
  })

  it('carries on where a stopped run left off, counting every row once', async () => {
    const { clientId, id } = await customerWithData(300)
    await requestCustomerDeletion(database.db, boss, { clientId, customerId: id })
    const stop = new AbortController()
    const run = deleteCustomerData(database.db, id, { tables, batchSize: 5, signal: stop.signal })
    // Stop it once some batches have committed, as a worker shutting down would.
    for (;;) {
      const progress = await getCustomerDeletion(database.db, id)
      if ((progress?.deletedRows['public.order_items'] ?? 0) >= 50) break
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    stop.abort(new Error('worker stopped'))
    await expect(run).rejects.toThrow('worker stopped')
    expect((await rowsOf(id)).customers).toBe(1)
    const done = await deleteCustomerData(database.db, id, { tables, batchSize: 5 })
    expect(done.deletedRows).toMatchObject({ 'public.order_items': 600, 'public.orders': 300, 'public.audit_log': 300 })
    expect(await rowsOf(id)).toEqual({ orders: 0, items: 0, audit: 0, keys: 0, customers: 0 })
  })

  it('answers typed errors for a bad customer id or a registered table that does not exist', async () => {
    await expect(deleteCustomerData(database.db, 'nope')).rejects.toMatchObject({ code: IdempotencyErrorCode.CUSTOMER_REFERENCE_INVALID })
    const { clientId, id } = await customerWithData(1)
    await requestCustomerDeletion(database.db, boss, { clientId, customerId: id })
    await expect(deleteCustomerData(database.db, id, { tables: [{ table: 'no_such_table', column: 'customer_id' }] })).rejects.toMatchObject({
      code: IdempotencyErrorCode.NOT_MIGRATED,
      sqlState: '42P01',
    })
  })

  it('is safe to run twice at once', async () => {
    const { clientId, id } = await customerWithData(200)
    await requestCustomerDeletion(database.db, boss, { clientId, customerId: id })
    const [a, b] = await Promise.all([
      deleteCustomerData(database.db, id, { tables, batchSize: 10 }),
      deleteCustomerData(database.db, id, { tables, batchSize: 10 }),
    ])
    const final = await getCustomerDeletion(database.db, id)
    expect([a.state, b.state, final?.state]).toEqual(['done', 'done', 'done'])
    expect(final?.deletedRows).toMatchObject({ 'public.order_items': 400, 'public.orders': 200, 'public.audit_log': 200, 'idempotency.customers': 1 })
    expect(await rowsOf(id)).toEqual({ orders: 0, items: 0, audit: 0, keys: 0, customers: 0 })
  })

  it('finishes while the application keeps writing rows for the customer', async () => {
    const { clientId, id } = await customerWithData(100)
    await requestCustomerDeletion(database.db, boss, { clientId, customerId: id })
    let writing = true
    let written = 0
    const writer = (async () => {
      while (writing) {
        // A write that raced the deletion: it either lands before the customer row goes, and is
        // deleted with it, or fails its foreign key check once the customer is gone.
        const ok = await sql`insert into orders (customer_id, total) values (${id}::uuid, 1)`.execute(database.db).then(() => true, () => false)
        if (!ok) break
        written++
      }
    })()
    const done = await deleteCustomerData(database.db, id, { tables, batchSize: 10 })
    writing = false
    await writer
    expect(done.state).toBe('done')
    expect(written).toBeGreaterThan(0)
    expect(done.deletedRows['public.orders']).toBe(100 + written)
    expect(await rowsOf(id)).toEqual({ orders: 0, items: 0, audit: 0, keys: 0, customers: 0 })
  })
})
