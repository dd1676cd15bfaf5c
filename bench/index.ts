// npm run bench: what withIdempotency costs on top of the business transaction it wraps.
//
// For each business transaction and client count, four variants run against the same database:
// the bare transaction, first calls (a fresh key each request) with and without the savepoint,
// and replays of stored keys. Noise on a shared machine drifts over seconds, so each variant
// runs in ROUNDS rounds, the variant order reversed every other round so that no variant always
// runs first or last, and the best round is shown with the spread between rounds.
//
// BENCH_SECONDS sets the measured seconds per cell (default 4); a warm-up of a quarter of that,
// at most 1 s, runs first. The default run takes about 4.5 minutes.
import { availableParallelism, cpus } from 'node:os'
import { sql } from 'kysely'
import pg from 'pg'
import { migrate } from '../src/index.ts'
import { createDatabase, dropDatabase, uniqueDatabaseName, withDatabase } from '../tools/databases.ts'
import { startLocalPostgres } from '../tools/local-postgres.ts'
import { connectCounted, runCell, walReader, type CellResult, type Counter, type WalReader } from './measure.ts'
import { createTables, scenarios, storeKeys, variant, variantNames, type BenchDatabase, type Scenario, type StoredKey, type VariantName } from './scenarios.ts'
import { fixed, percentile, signed, table } from './stats.ts'

const CLIENTS = [1, 8, 32]
const ROUNDS = 2
// A multiple of every client count: each client then replays keys no other client touches (see
// measure.ts), so replays measure the lookup, not waits on one another's advisory locks.
const REPLAY_KEYS = 1024
const GOAL_CLIENTS = 8

const seconds = Number(process.env.BENCH_SECONDS ?? 4)
if (!(seconds > 0)) throw new Error(`BENCH_SECONDS must be a positive number of seconds; got ${process.env.BENCH_SECONDS}`)
const warmupSeconds = Math.min(1, seconds / 4)

// Ctrl-C stops the clients and still drops the database: the server may be shared.
const interrupt = new AbortController()
process.once('SIGINT', () => interrupt.abort(new Error('interrupted')))

type Best = Map<string, CellResult & { clients: number }>

const server = await startLocalPostgres((line) => console.error(line))
try {
  const database = uniqueDatabaseName('pgidem_bench')
  await createDatabase(server.url, database)
  try {
    await bench(withDatabase(server.url, database), server.description)
  } finally {
    await dropDatabase(server.url, database)
  }
} finally {
  await server.stop()
}

async function bench(url: string, origin: string): Promise<void> {
  const counter: Counter = { queries: 0 }
  const monitor = new pg.Client({ connectionString: url })
  await monitor.connect()
  try {
    await printHeader(monitor, origin)
    const wal = await walReader(monitor)
    const { replayKeys, frameTrips } = await setUp(url, counter)
    const best: Best = new Map()
    for (const scenario of scenarios) {
      for (const clients of CLIENTS) {
        const rows = await measureTable(url, scenario, clients, replayKeys.get(scenario)!, counter, wal)
        for (const [name, result] of rows) best.set(`${scenario.name}|${clients}|${name}`, { ...result.best, clients })
        console.log(`\n${scenario.name}, ${clients} client${clients === 1 ? '' : 's'}`)
        console.log(formatTable(rows))
      }
    }
    console.log(`\n${summary(best, frameTrips)}`)
  } finally {
    await monitor.end()
  }
}

async function printHeader(monitor: pg.Client, origin: string): Promise<void> {
  const { rows } = await monitor.query<{ version: string; fsync: string; sync: string }>(
    `select current_setting('server_version') as version, current_setting('fsync') as fsync, current_setting('synchronous_commit') as sync`,
  )
  const settings = rows[0]!
  console.log('pg-idempotency benchmark')
  console.log(`PostgreSQL ${settings.version}, ${origin}, fsync=${settings.fsync}, synchronous_commit=${settings.sync}`)
  console.log(`Node ${process.version}, ${availableParallelism()} CPUs (${cpus()[0]?.model ?? 'unknown'})`)
  console.log(
    `Each cell: ${warmupSeconds} s warm-up, ${seconds} s measured; ${ROUNDS} rounds, variant order reversed in alternate rounds; ` +
      `best round shown, spread = (best - worst) / best req/s.`,
  )
  console.log(
    'Round trips are counted at the pg client (BEGIN and COMMIT included). WAL is the cluster-wide ' +
      'pg_current_wal_insert_lsn() delta over the measured seconds, per request.',
  )
  console.log(`Replays repeat ${REPLAY_KEYS} stored keys per business transaction, each client its own share.`)
}

async function setUp(url: string, counter: Counter) {
  const db = connectCounted<BenchDatabase>(url, 8, counter)
  try {
    await migrate(db)
    await createTables(db)
    const replayKeys = new Map<Scenario, StoredKey[]>()
    for (const scenario of scenarios) replayKeys.set(scenario, await storeKeys(db, scenario, REPLAY_KEYS, 8))
    await sql`analyze`.execute(db)
    // What an empty transaction costs, to tell the library's own statements in a replay from the frame.
    const before = counter.queries
    await db.transaction().execute(async () => {})
    return { replayKeys, frameTrips: counter.queries - before }
  } finally {
    await db.destroy()
  }
}

interface VariantRuns {
  best: CellResult
  spread: number
}

async function measureTable(url: string, scenario: Scenario, clients: number, replayKeys: StoredKey[], counter: Counter, wal: WalReader | undefined) {
  const db = connectCounted<BenchDatabase>(url, clients, counter)
  try {
    const runs = new Map<VariantName, CellResult[]>(variantNames.map((name) => [name, []]))
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? variantNames : variantNames.toReversed()
      for (const name of order) {
        const request = variant(db, scenario, name, replayKeys)
        runs.get(name)!.push(await runCell(request, clients, warmupSeconds * 1000, seconds * 1000, counter, wal, interrupt.signal))
      }
    }
    const rows = new Map<VariantName, VariantRuns>()
    for (const [name, results] of runs) {
      const sorted = results.toSorted((a, b) => rate(b) - rate(a))
      const best = sorted[0]!
      rows.set(name, { best, spread: (rate(best) - rate(sorted.at(-1)!)) / rate(best) })
    }
    return rows
  } finally {
    await db.destroy()
  }
}

function rate(result: CellResult): number {
  return result.requests / result.seconds
}

function trips(result: CellResult): number {
  return result.queries / result.requests
}

function walPerRequest(result: CellResult): number | undefined {
  return result.walBytes === undefined ? undefined : Number(result.walBytes) / result.requests
}

function formatTable(rows: Map<VariantName, VariantRuns>): string {
  const bare = rows.get('bare')!.best
  const bareWal = walPerRequest(bare)
  const header = ['variant', 'req/s', 'spread', 'p50 ms', 'p99 ms', 'trips/req', 'vs bare', 'WAL B/req', 'WAL vs bare']
  const body = [...rows].map(([name, { best, spread }]) => {
    const walBytes = walPerRequest(best)
    return [
      name,
      fixed(rate(best), 0),
      `${fixed(spread * 100, 0)}%`,
      fixed(percentile(best.latenciesMs, 50), 2),
      fixed(percentile(best.latenciesMs, 99), 2),
      fixed(trips(best), 2),
      fixed(rate(best) / rate(bare), 2),
      fixed(walBytes, 0),
      walBytes === undefined || bareWal === undefined ? 'n/a' : signed(walBytes - bareWal),
    ]
  })
  return table(header, body)
}

/** One line against the goals at GOAL_CLIENTS clients; a miss is reported, never fatal. */
function summary(best: Best, frameTrips: number): string {
  const cell = (scenario: Scenario, name: VariantName) => best.get(`${scenario.name}|${GOAL_CLIENTS}|${name}`)!
  const ratio = (scenario: Scenario, name: VariantName) => rate(cell(scenario, name)) / rate(cell(scenario, 'bare'))
  const verdict = (ok: boolean) => (ok ? 'PASS' : 'MISS')
  const atLeast = (value: number, goal: number) => `${value.toFixed(2)} ${verdict(value >= goal)}`
  const atMost = (value: number, goal: number) => `${value.toFixed(2)} ${verdict(value <= goal)}`
  const [insert, threeStatements] = scenarios as [Scenario, Scenario]
  // The same extra statements wrap both business transactions; take the worse, should they differ.
  const extra = (name: VariantName) => Math.max(...scenarios.map((scenario) => trips(cell(scenario, name)) - trips(cell(scenario, 'bare'))))
  const replayTrips = Math.max(...scenarios.map((scenario) => trips(cell(scenario, 'replay')))) - frameTrips
  return [
    `Goals at ${GOAL_CLIENTS} clients:`,
    `first/bare single insert ${atLeast(ratio(insert, 'first'), 0.6)}, no savepoint ${atLeast(ratio(insert, 'first, no savepoint'), 0.6)} (>= 0.60);`,
    `first/bare three statements ${atLeast(ratio(threeStatements, 'first'), 0.75)}, no savepoint ${atLeast(ratio(threeStatements, 'first, no savepoint'), 0.75)} (>= 0.75);`,
    `replay/bare single insert ${atLeast(ratio(insert, 'replay'), 1.5)}, three statements ${atLeast(ratio(threeStatements, 'replay'), 1.5)} (>= 1.50);`,
    `extra round trips per first call ${atMost(extra('first'), 2)}, no savepoint ${atMost(extra('first, no savepoint'), 2)} (<= 2);`,
    `round trips per replay beyond BEGIN/COMMIT ${atMost(replayTrips, 1)} (<= 1)`,
  ].join(' ')
}
