import { sql } from 'kysely'
import { expect, it } from 'vitest'
import { deletionTargets } from '../src/customers/deletion/dependent-tables.ts'
import { inTransaction } from '../src/data/database.ts'
import { kyselyDatabase, kyselySession } from '../src/data/kysely/index.ts'
import { sql as seamSql, type SqlFragment } from '../src/data/statement.ts'
import { useTestDatabase } from './support/test-database.ts'

const database = useTestDatabase()

/** The deletion's targets and one statement made of their fragments, each in a short transaction. */
const targetsOf = () => inTransaction(kyselyDatabase(database.db), (session) => deletionTargets(session))
const rowsOf = (fragment: SqlFragment) => inTransaction(kyselyDatabase(database.db), (session) => session.run(fragment.toStatement()))

/**
 * A big customer is deleted a chunk of its accounts at a time, each chunk's transactions and notes
 * first. Each batch must start from the chunk's own rows and walk down the foreign key indexes:
 * a plan that walks the customer's whole subtree and filters it made a 1,000,000-row customer take
 * twice as long to delete, and more the bigger the customer.
 */
it("starts each batch below a chunk from the chunk's own rows", async () => {
  const db = database.db
  await sql`
    create table accounts (id bigserial primary key, customer_id uuid not null references idempotency.customers);
    create index on accounts (customer_id);
    create table transactions (id bigserial primary key, account_id bigint not null references accounts);
    create index on transactions (account_id);
    create table transaction_notes (id bigserial primary key, transaction_id bigint not null references transactions);
    create index on transaction_notes (transaction_id);`.execute(db)
  const { rows } = await sql<{ customer_id: string }>`
    insert into idempotency.customers (client_id, idempotent_identifier) values ('plan', 'big') returning customer_id`.execute(db)
  const customerId = rows[0]!.customer_id
  // 10,000 accounts, 5 transactions each, 2 notes each: 160,000 rows, enough for the planner to
  // choose by the indexes rather than read small tables whole.
  await sql`
    with a as (insert into accounts (customer_id) select ${customerId}::uuid from generate_series(1, 10000) returning id),
         t as (insert into transactions (account_id) select a.id from a, generate_series(1, 5) returning id)
    insert into transaction_notes (transaction_id) select t.id from t, generate_series(1, 2)`.execute(db)
  await sql`analyze`.execute(db)

  const targets = await targetsOf()
  const notes = targets.find((target) => target.label === 'public.transaction_notes')!
  const accounts = targets.find((target) => target.label === 'public.accounts')!
  const chunk = await rowsOf(accounts.select(customerId, 100, 'none'))
  const within = chunk.map((row) => `${row.toid}:${row.tid}`)

  // At PostgreSQL's default costs, whatever the server under the tests is tuned to. With
  // random_page_cost at 6 or more the planner prefers a sequential scan that it expects the LIMIT to
  // stop early (see the limits in docs/customer-deletion.md).
  const text = await db.transaction().execute(async (tx) => {
    await sql`set local random_page_cost = 4`.execute(tx)
    await sql`set local seq_page_cost = 1`.execute(tx)
    const plan = await kyselySession(tx).run(seamSql`explain ${notes.select(customerId, 1000, 'skip locked', within)}`.toStatement())
    return plan.map((row) => row['QUERY PLAN']).join('\n')
  })
  expect(text).toContain('Tid Scan on accounts')
  expect(text).not.toMatch(/Seq Scan on (transactions|transaction_notes)/)
  expect(text).not.toContain('Index Scan using transactions_pkey')

  // The same rows as the chunk's subtree, no more: 100 accounts x 5 transactions x 2 notes.
  const selected = await rowsOf(seamSql`select count(*)::int as n from (${notes.select(customerId, null, 'none', within)}) as s`)
  expect(selected).toEqual([{ n: 1000 }])
})

it('every table holding a customer is a target once, its own outbox (reached by its foreign key) included', async () => {
  const labels = (await targetsOf()).map((target) => target.label)
  expect(labels.filter((label) => label === 'idempotency.outbox_events')).toHaveLength(1)
  expect(labels.filter((label) => label === 'idempotency.idempotency_keys')).toHaveLength(1)
  expect(new Set(labels).size).toBe(labels.length)
})
