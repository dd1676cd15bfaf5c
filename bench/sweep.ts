// node bench/sweep.ts: sweeping a million expired keys while claims go on.
//
// For each batch size (BENCH_BATCH_SIZES, default 1000,5000): BENCH_KEYS expired keys (default
// 1,000,000) are inserted by SQL, CLIENTS loops make first calls of withIdempotency with fresh
// keys (a one-row insert each), a few seconds of baseline are measured, then sweepExpiredKeys
// runs while the claims go on. The default run takes about 2 minutes on 2 CPUs.
import { randomInt, randomUUID } from 'node:crypto'
import { sql, type Kysely } from 'kysely'
import pg from 'pg'
import { migrate, sweepExpiredKeys, withIdempotency } from '../src/index.ts'
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

const KEYS = Number(process.env.BENCH_KEYS ?? 1_000_000)
const BATCH_SIZES = (process.env.BENCH_BATCH_SIZES ?? '1000,5000').split(',').map(Number)
const CLIENTS = 8
const WARMUP_SECONDS = 1
const BASELINE_SECONDS = 5
const SAMPLE_MS = 50
const SCOPE = 'tenant_0001:POST /orders'

interface Pass {
  batchSize: number
  seedSeconds: number
  sweepSeconds: number
  swept: number
  claims: Map<string, PhaseResult>
  waits: Map<string, LockWaitSummary>
  verified: string
}

await withBenchDatabase('pgidem_bench_sweep', async (url, origin, signal) => {
  const monitor = new pg.Client({ connectionString: url, application_name: 'lock sampler' })
  await monitor.connect()
  const setup = connectAs(url, 2, 'setup')
  const clients = connectAs(url, CLIENTS, 'claim')
  const sweeper = connectAs(url, 1, 'sweep')
  try {
    await printHeader(monitor, 'pg-idempotency: sweeping expired keys while claims go on', origin, [
      `${KEYS.toLocaleString('en')} expired keys inserted by SQL before each sweep (expiring 5 ms apart in insertion order, the last one an hour ago), then ANALYZE.`,
      `Claims: ${CLIENTS} loops, each a transaction with a first call of withIdempotency (fresh key, default options) around a one-row insert. ` +
        `Baseline: ${BASELINE_SECONDS} s after ${WARMUP_SECONDS} s warm-up, right before each sweep. Ratios (x) are against that baseline.`,
      `Lock waits sampled every ${SAMPLE_MS} ms from pg_locks (not granted): the longest waiter seen, a lower bound on the longest wait.`,
    ])
    await migrate(setup)
    await sql`create table orders (id bigserial primary key, amount integer not null, created_at timestamptz not null default now())`.execute(setup)
    let claimed = 0
    const claim = async () => {
      const request = { amount: randomInt(1, 100) }
      const outcome = await clients
        .transaction()
        .execute((tx) =>
          withIdempotency(tx, { scope: SCOPE, key: randomUUID(), request }, (tx) => tx.insertInto('orders').values(request).returning('id').executeTakeFirstOrThrow()),
        )
      if (outcome.replayed) throw new Error('a fresh key was replayed')
      claimed++
    }

    const passes: Pass[] = []
    for (const batchSize of BATCH_SIZES) {
      const seedStart = performance.now()
      await seedExpiredKeys(setup, `expired-${batchSize}`)
      const seedSeconds = (performance.now() - seedStart) / 1000

      const load = new Load(claim, CLIENTS, signal)
      const sampler = new LockWaitSampler(monitor, SAMPLE_MS)
      const measure = async () => {
        await sleep(WARMUP_SECONDS * 1000, signal)
        load.phase('baseline')
        sampler.phase('baseline')
        await sleep(BASELINE_SECONDS * 1000, signal)
        load.phase('sweep')
        sampler.phase('sweep')
        const start = performance.now()
        const swept = await sweepExpiredKeys(sweeper, { batchSize })
        return { swept, sweepSeconds: (performance.now() - start) / 1000 }
      }
      const { swept, sweepSeconds } = await measure().catch(async (error: unknown) => {
        // Stop the clients even when the sweep failed, so the database can be dropped.
        await Promise.allSettled([load.stop(), sampler.stop()])
        throw error
      })
      const [claims, waits] = await Promise.all([load.stop(), sampler.stop()])
      const verified = await verify(setup, swept, claimed)
      passes.push({ batchSize, seedSeconds, sweepSeconds, swept, claims, waits, verified })
      // The next pass starts from a vacuumed table, as this one did, not from a million dead rows.
      if (batchSize !== BATCH_SIZES.at(-1)) await sql`vacuum analyze idempotency.idempotency_keys`.execute(setup)
    }
    report(passes)
    console.log(`Load average at the end: ${loadAverage()}`)
  } finally {
    await Promise.all([setup.destroy(), clients.destroy(), sweeper.destroy(), monitor.end()])
  }
})

/** Completed keys as withIdempotency stores them, in another scope, all expired. */
async function seedExpiredKeys(db: Kysely<any>, prefix: string): Promise<void> {
  await sql`
    insert into idempotency.idempotency_keys (scope, key, fingerprint, status, response, created_at, completed_at, expires_at)
    select 'tenant_0002:POST /payments', ${prefix} || '-' || i, sha256(convert_to(${prefix} || '-' || i, 'UTF8')), 'completed', '{}',
           now() - interval '1 day', now() - interval '1 day', now() - interval '1 hour' - (${KEYS} - i) * interval '5 ms'
      from generate_series(1, ${KEYS}) i`.execute(db)
  await sql`analyze idempotency.idempotency_keys`.execute(db)
}

/** Every expired key is gone, and every claim left its key and its order row. */
async function verify(db: Kysely<any>, swept: number, claimed: number): Promise<string> {
  const { rows } = await sql<{ expired: number; live: number; orders: number }>`
    select (select count(*)::int from idempotency.idempotency_keys where expires_at < now()) as expired,
           (select count(*)::int from idempotency.idempotency_keys where scope = ${SCOPE}) as live,
           (select count(*)::int from orders) as orders`.execute(db)
  const found = rows[0]!
  const ok = swept === KEYS && found.expired === 0 && found.live === claimed && found.orders === claimed
  const line = `${ok ? 'OK' : 'FAILED'}: swept ${swept} of ${KEYS}, ${found.expired} expired left; claims so far ${claimed}: ${found.live} keys, ${found.orders} order rows`
  if (!ok) throw new Error(`verification failed: ${line}`)
  return line
}

function report(passes: Pass[]): void {
  console.log('\nSweep (claims running)')
  console.log(
    table(
      ['batch', 'keys', 'seed s', 'sweep s', 'keys/s', 'batches'],
      passes.map((p) => [String(p.batchSize), String(p.swept), fixed(p.seedSeconds, 1), fixed(p.sweepSeconds, 1), fixed(p.swept / p.sweepSeconds, 0), String(Math.floor(p.swept / p.batchSize) + 1)]),
    ),
  )
  console.log('\nClaims (first calls, one transaction each), by phase')
  console.log(
    table(
      ['batch', 'phase', ...latencyHeader],
      passes.flatMap((p) => ['baseline', 'sweep'].map((phase) => [String(p.batchSize), phase, ...latencyCells(p.claims.get(phase)!, p.claims.get('baseline')!)])),
    ),
  )
  console.log('\nHeavyweight lock waits seen by the sampler, by phase')
  console.log(
    table(
      ['batch', 'phase', ...lockWaitHeader],
      passes.flatMap((p) => ['baseline', 'sweep'].map((phase) => [String(p.batchSize), phase, ...lockWaitCells(p.waits.get(phase)!)])),
    ),
  )
  console.log('\nVerification after each sweep')
  for (const p of passes) console.log(`batch ${p.batchSize}: ${p.verified}`)
}
