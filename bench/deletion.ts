// node bench/deletion.ts: deleting a million-row customer while other customers keep writing.
//
// Three application tables lead to the customers table by foreign keys, two of them through
// another: accounts -> customers, transactions -> accounts, transaction_notes -> transactions. One
// customer holds BENCH_ROWS rows (default 1,000,000: 1% accounts, 33% transactions, 66% notes),
// 50 others a few each. For each batch size (BENCH_BATCH_SIZES, default 1000) a big customer is
// seeded, WRITERS loops insert rows for the other customers, a few seconds of baseline are
// measured, then deleteCustomerData removes the big customer while the writers go on.
// The default run takes about 2.5 minutes on 2 CPUs; BENCH_BATCH_SIZES=1000,5000 about 4.5.
import { randomInt } from 'node:crypto'
import { sql, type Kysely } from 'kysely'
import pg from 'pg'
import { deleteCustomerData, migrate, type CustomerDeletion } from '../src/index.ts'
import { fixed, table } from './stats.ts'
import {
  connectAs,
  latencyCells,
  latencyHeader,
  Load,
  loadAverage,
  lockWaitCells,
  lockWaitHeader,
  LockWaitSampler,
  printHeader,
  sleep,
  withBenchDatabase,
  type LockWaitSummary,
  type PhaseResult,
} from './under-load.ts'

const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000)
const BATCH_SIZES = (process.env.BENCH_BATCH_SIZES ?? '1000').split(',').map(Number)
const WRITERS = 4
const OTHER_CUSTOMERS = 50
const WARMUP_SECONDS = 1
const BASELINE_SECONDS = 5
const SAMPLE_MS = 50
const PROGRESS_MS = 250
// Per account of the big customer: 33 transactions with 2 notes each, 100 rows in all.
const BIG = { accounts: Math.round(ROWS / 100), transactions: 33, notes: 2 }
// Per other customer: 4 accounts, 10 transactions each with 1 note, 84 rows.
const SMALL = { accounts: 4, transactions: 10, notes: 1 }
const rowsOf = (shape: typeof BIG) => shape.accounts * (1 + shape.transactions * (1 + shape.notes))

interface Pass {
  batchSize: number
  seedSeconds: number
  deletionSeconds: number
  deletion: CustomerDeletion
  tables: TableTime[]
  writes: Map<string, PhaseResult>
  waits: Map<string, LockWaitSummary>
  verified: string
}

await withBenchDatabase('pgidem_bench_deletion', async (url, origin, signal) => {
  const monitor = new pg.Client({ connectionString: url, application_name: 'lock sampler' })
  await monitor.connect()
  const setup = connectAs(url, 2, 'setup')
  const writers = connectAs(url, WRITERS, 'writer')
  const deleter = connectAs(url, 1, 'deletion')
  try {
    await printHeader(monitor, 'pg-idempotency: deleting one big customer while other customers write', origin, [
      `Big customer: ${rowsOf(BIG).toLocaleString('en')} rows = ${BIG.accounts} accounts x (1 + ${BIG.transactions} transactions x (1 + ${BIG.notes} notes)); ` +
        `${OTHER_CUSTOMERS} other customers with ${rowsOf(SMALL)} rows each. Indexes on every foreign key column.`,
      `Writers: ${WRITERS} loops, each write its own transaction inserting an account, a transaction and a note for a random other customer ` +
        `(foreign key checks against customers, accounts and transactions). Baseline: ${BASELINE_SECONDS} s after ${WARMUP_SECONDS} s warm-up, ` +
        'right before each deletion. Ratios (x) are against that baseline.',
      `Lock waits sampled every ${SAMPLE_MS} ms from pg_locks (not granted) joined to pg_stat_activity: clock_timestamp() - waitstart of the ` +
        'longest waiter seen, a lower bound on the longest wait; the writers\' max latency is the upper bound on theirs.',
    ])
    await migrate(setup)
    await createTables(setup)
    const others = await createCustomers(setup, 'customer', OTHER_CUSTOMERS)
    for (const id of others) await seed(setup, id, SMALL)
    const { rows: otherAccounts } = await sql<{ id: string; customer_id: string }>`select id, customer_id from accounts`.execute(setup)
    let written = 0
    const write = async () => {
      const account = otherAccounts[randomInt(otherAccounts.length)]!
      await writers.transaction().execute(async (tx) => {
        await sql`insert into accounts (customer_id) values (${account.customer_id}::uuid)`.execute(tx)
        const { rows } = await sql<{ id: string }>`insert into transactions (account_id, amount) values (${account.id}, 1) returning id`.execute(tx)
        await sql`insert into transaction_notes (transaction_id, note) values (${rows[0]!.id}, 'w')`.execute(tx)
      })
      written++
    }

    const passes: Pass[] = []
    for (const batchSize of BATCH_SIZES) {
      const seedStart = performance.now()
      const [big] = await createCustomers(setup, `big-${batchSize}`, 1)
      await seed(setup, big!, BIG)
      await sql`analyze`.execute(setup)
      const seedSeconds = (performance.now() - seedStart) / 1000
      // What requestCustomerDeletion writes, without pg-boss: the mark and the progress row.
      await sql`update idempotency.customers set status = 'deleting', deletion_requested_at = now() where customer_id = ${big}::uuid`.execute(setup)
      await sql`insert into idempotency.customer_deletions (customer_id, client_id, idempotent_identifier) values (${big}::uuid, 'bench', ${`big-${batchSize}-1`})`.execute(setup)

      const load = new Load(write, WRITERS, signal)
      const sampler = new LockWaitSampler(monitor, SAMPLE_MS)
      const measure = async () => {
        await sleep(WARMUP_SECONDS * 1000, signal)
        load.phase('baseline')
        sampler.phase('baseline')
        await sleep(BASELINE_SECONDS * 1000, signal)
        load.phase('deletion')
        sampler.phase('deletion')
        const start = performance.now()
        const run = deleteCustomerData(deleter, big!, { batchSize })
        const progress = watchProgress(setup, big!, start, run)
        const deletion = await run
        const deletionSeconds = (performance.now() - start) / 1000
        return { deletion, deletionSeconds, tables: tableTimes(await progress, deletion, deletionSeconds) }
      }
      const { deletion, deletionSeconds, tables } = await measure().catch(async (error: unknown) => {
        // Stop the writers even when the deletion failed, so the database can be dropped.
        await Promise.allSettled([load.stop(), sampler.stop()])
        throw error
      })
      const [writes, waits] = await Promise.all([load.stop(), sampler.stop()])
      const verified = await verify(setup, big!, deletion, others, rowsOf(SMALL) * OTHER_CUSTOMERS + 3 * written)
      passes.push({ batchSize, seedSeconds, deletionSeconds, deletion, tables, writes, waits, verified })
      // The next pass starts from a vacuumed table, as this one did, not from a million dead rows.
      if (batchSize !== BATCH_SIZES.at(-1)) await sql`vacuum analyze accounts, transactions, transaction_notes`.execute(setup)
    }
    report(passes)
    console.log('\nVerification after each deletion')
    for (const p of passes) console.log(`batch ${p.batchSize}: ${p.verified}`)
    console.log(`Load average at the end: ${loadAverage()}`)
  } finally {
    await Promise.all([setup.destroy(), writers.destroy(), deleter.destroy(), monitor.end()])
  }
})

async function createTables(db: Kysely<any>): Promise<void> {
  await sql`
    create table accounts (id bigserial primary key, customer_id uuid not null references idempotency.customers, opened_at timestamptz not null default now());
    create index on accounts (customer_id);
    create table transactions (id bigserial primary key, account_id bigint not null references accounts, amount integer not null);
    create index on transactions (account_id);
    create table transaction_notes (id bigserial primary key, transaction_id bigint not null references transactions, note text not null);
    create index on transaction_notes (transaction_id);`.execute(db)
}

async function createCustomers(db: Kysely<any>, prefix: string, count: number): Promise<string[]> {
  const { rows } = await sql<{ customer_id: string }>`
    insert into idempotency.customers (client_id, idempotent_identifier)
    select 'bench', ${prefix} || '-' || i from generate_series(1, ${count}) i returning customer_id`.execute(db)
  return rows.map((row) => row.customer_id)
}

/** One statement: the foreign key checks run at its end, when all three inserts are visible. */
async function seed(db: Kysely<any>, customerId: string, shape: typeof BIG): Promise<void> {
  await sql`
    with a as (insert into accounts (customer_id) select ${customerId}::uuid from generate_series(1, ${shape.accounts}) returning id),
         t as (insert into transactions (account_id, amount) select a.id, g from a, generate_series(1, ${shape.transactions}) g returning id)
    insert into transaction_notes (transaction_id, note) select t.id, 'note ' || n from t, generate_series(1, ${shape.notes}) n`.execute(db)
}

interface Progress {
  seconds: number
  rows: Record<string, number>
}

/** The deletion's progress record, read every PROGRESS_MS until the deletion ends. */
async function watchProgress(db: Kysely<any>, customerId: string, start: number, run: Promise<unknown>): Promise<Progress[]> {
  let running = true
  const stop = () => (running = false)
  run.then(stop, stop)
  const samples: Progress[] = []
  while (running) {
    const { rows } = await sql<{ deleted_rows: Record<string, number> }>`
      select deleted_rows from idempotency.customer_deletions where customer_id = ${customerId}::uuid`.execute(db)
    samples.push({ seconds: (performance.now() - start) / 1000, rows: rows[0]?.deleted_rows ?? {} })
    await sleep(PROGRESS_MS)
  }
  return samples
}

interface TableTime {
  table: string
  rows: number
  seconds: number
  /** Rows per second over the table's first and last tenth of rows: a batch that slows as the table empties shows here. */
  firstTenth: number
  lastTenth: number
}

/**
 * The tables are emptied one after another, deepest first; each counts as done when its progress
 * first reached its final count (to within PROGRESS_MS), and its time runs from the previous one's.
 */
function tableTimes(samples: Progress[], deletion: CustomerDeletion, totalSeconds: number): TableTime[] {
  const reached = (table: string, rows: number) => samples.find((s) => Number(s.rows[table] ?? 0) >= rows)?.seconds ?? totalSeconds
  const tables = Object.entries(deletion.deletedRows)
    .filter(([table]) => table.startsWith('public.'))
    .map(([table, rows]) => ({ table, rows, done: reached(table, rows) }))
    .sort((a, b) => a.done - b.done)
  let previous = 0
  return tables.map(({ table, rows, done }) => {
    const tenth = rows / 10
    const time = { table, rows, seconds: done - previous, firstTenth: tenth / (reached(table, tenth) - previous), lastTenth: tenth / (done - reached(table, rows - tenth)) }
    previous = done
    return time
  })
}

/** The big customer and all its rows are gone, each counted once; the others have every row. */
async function verify(db: Kysely<any>, big: string, deletion: CustomerDeletion, others: string[], expectedOtherRows: number): Promise<string> {
  const { rows } = await sql<{ big_rows: number; big_customer: number; other_rows: number; other_customers: number; total_rows: number }>`
    with owned as (
      select a.customer_id, 1 + (select count(*) from transactions t where t.account_id = a.id)
                           + (select count(*) from transactions t join transaction_notes n on n.transaction_id = t.id where t.account_id = a.id) as n
        from accounts a)
    select (select coalesce(sum(n), 0)::int from owned where customer_id = ${big}::uuid) as big_rows,
           (select count(*)::int from idempotency.customers where customer_id = ${big}::uuid) as big_customer,
           (select coalesce(sum(n), 0)::int from owned where customer_id = any(${others}::uuid[])) as other_rows,
           (select count(*)::int from idempotency.customers where customer_id = any(${others}::uuid[])) as other_customers,
           (select count(*)::int from accounts) + (select count(*)::int from transactions) + (select count(*)::int from transaction_notes) as total_rows`.execute(db)
  const found = rows[0]!
  const deletedRows = applicationRows(deletion)
  const ok =
    deletion.state === 'done' &&
    found.big_rows === 0 &&
    found.big_customer === 0 &&
    deletedRows === rowsOf(BIG) &&
    found.other_rows === expectedOtherRows &&
    found.total_rows === expectedOtherRows &&
    found.other_customers === others.length
  const line =
    `${ok ? 'OK' : 'FAILED'}: deletion ${deletion.state}; deleted ${JSON.stringify(deletion.deletedRows)}; ` +
    `big customer left: ${found.big_rows} rows, ${found.big_customer} customer row; ` +
    `other customers: ${found.other_customers} of ${others.length}, ${found.other_rows} rows (expected ${expectedOtherRows} = seeded + 3 x writes so far; ` +
    `${found.total_rows} rows in the three tables)`
  if (!ok) throw new Error(`verification failed: ${line}`)
  return line
}

/** Rows deleted from the application tables, the customer row not counted. */
function applicationRows(deletion: CustomerDeletion): number {
  return Object.entries(deletion.deletedRows).reduce((sum, [table, n]) => (table.startsWith('public.') ? sum + n : sum), 0)
}

function report(passes: Pass[]): void {
  console.log('\nDeletion of the big customer (writers running)')
  console.log(
    table(
      ['batch', 'rows', 'seed s', 'deletion s', 'rows/s', 'batches'],
      passes.map((p) => {
        const rows = applicationRows(p.deletion)
        // One per batch (a last, short one per table) plus the final transaction.
        const batches = Math.ceil(BIG.accounts / p.batchSize) + Math.ceil((BIG.accounts * BIG.transactions) / p.batchSize) +
          Math.ceil((BIG.accounts * BIG.transactions * BIG.notes) / p.batchSize) + 1
        return [String(p.batchSize), String(rows), fixed(p.seedSeconds, 1), fixed(p.deletionSeconds, 1), fixed(rows / p.deletionSeconds, 0), `~${batches}`]
      }),
    ),
  )
  console.log(`\nDeletion by table, deepest first (progress record read every ${PROGRESS_MS} ms; tenths shown for tables that took 5 s or more)`)
  console.log(
    table(
      ['batch', 'table', 'rows', 's', 'rows/s', 'first 10% rows/s', 'last 10% rows/s'],
      passes.flatMap((p) =>
        p.tables.map((t) => {
          const tenths = t.seconds >= 5 ? [fixed(t.firstTenth, 0), fixed(t.lastTenth, 0)] : ['-', '-']
          return [String(p.batchSize), t.table, String(t.rows), fixed(t.seconds, 1), fixed(t.rows / t.seconds, 0), ...tenths]
        }),
      ),
    ),
  )
  console.log("\nOther customers' writes (3 inserts, one transaction each), by phase")
  console.log(
    table(
      ['batch', 'phase', ...latencyHeader],
      passes.flatMap((p) => ['baseline', 'deletion'].map((phase) => [String(p.batchSize), phase, ...latencyCells(p.writes.get(phase)!, p.writes.get('baseline')!)])),
    ),
  )
  console.log('\nHeavyweight lock waits seen by the sampler, by phase (any backend of the database)')
  console.log(
    table(
      ['batch', 'phase', ...lockWaitHeader],
      passes.flatMap((p) => ['baseline', 'deletion'].map((phase) => [String(p.batchSize), phase, ...lockWaitCells(p.waits.get(phase)!)])),
    ),
  )
}
