import { sql } from 'kysely'
import { deleteCustomerData, migrate } from '../src/index.ts'
import { connect } from '../tools/databases.ts'
import { withBenchDatabase } from './under-load.ts'
await withBenchDatabase('pgidem_diag', async (url) => {
  const db = connect(url, 3)
  try {
    await migrate(db)
    await sql`
    create table accounts (id bigserial primary key, customer_id uuid not null references idempotency.customers);
    create index on accounts (customer_id);
    create table transactions (id bigserial primary key, account_id bigint not null references accounts, amount integer not null);
    create index on transactions (account_id);
    create table transaction_notes (id bigserial primary key, transaction_id bigint not null references transactions, note text not null);
    create index on transaction_notes (transaction_id);`.execute(db)
    const { rows } = await sql<{ id: string }>`insert into idempotency.customers (client_id, idempotent_identifier) values ('b', 'big') returning customer_id as id`.execute(db)
    const id = rows[0]!.id
    await sql`
    with a as (insert into accounts (customer_id) select ${id}::uuid from generate_series(1, 10000) returning id),
         t as (insert into transactions (account_id, amount) select a.id, g from a, generate_series(1, 33) g returning id)
    insert into transaction_notes (transaction_id, note) select t.id, 'note ' || n from t, generate_series(1, 2) n`.execute(db)
    await sql`analyze`.execute(db)
    await sql`insert into idempotency.customer_deletions (customer_id, client_id, idempotent_identifier) values (${id}::uuid, 'b', 'big')`.execute(db)
    const start = performance.now()
    let explained = 0
    const run = deleteCustomerData(db, id, { batchSize: 1000 })
    let finished = false
    run.finally(() => (finished = true))
    let last = 0
    while (!finished) {
      await new Promise((r) => setTimeout(r, 3000))
      const { rows } = await sql<{ d: Record<string, number> }>`select deleted_rows as d from idempotency.customer_deletions`.execute(db)
      const d = rows[0]!.d
      const total = Object.values(d).reduce((a, b) => a + Number(b), 0)
      console.log(((performance.now() - start) / 1000).toFixed(1), JSON.stringify(d), 'rate', ((total - last) / 3).toFixed(0))
      last = total
      const notes = Number(d['public.transaction_notes'] ?? 0)
      if ((explained === 0 && notes > 50000) || (explained === 1 && notes > 400000)) {
        explained++
        const plan = await db.transaction().execute(async (tx) => sql<{ 'QUERY PLAN': string }>`explain (analyze, buffers, costs off)
          select t2.ctid from transaction_notes t2 join transactions t1 on t2.transaction_id = t1.id join accounts t0 on t1.account_id = t0.id
          join idempotency.customers c on t0.customer_id = c.customer_id where c.customer_id = ${id}::uuid limit 1000 for update of t2 skip locked`.execute(tx))
        console.log(plan.rows.map((r) => r['QUERY PLAN']).join('\n'))
      }
    }
    await run
    console.log('total', ((performance.now() - start) / 1000).toFixed(1))
  } finally { await db.destroy() }
})
