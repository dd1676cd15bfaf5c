// npm run bench: what withIdempotency costs on top of the business transaction it wraps.
//
// For each business transaction and client count, eight variants run against the same database:
// - bare: the business transaction alone, on a plain pool, as the user's own code runs it;
// - first (a fresh key each request) on an optimizedDialect, the recommended set-up: the claim
//   goes in BEGIN's message and the stored result in COMMIT's;
// - first, unbatched: the same pool with { batching: false }: statements prepared, each in a
//   round trip of its own, which is how the batching's gain shows in the same run;
// - first, savepoint: { savepoint: true } (what FinalFailure needs), optimized pool;
// - first, plain pool: without optimizedDialect, as a user who has not opted in;
// - replay (keys stored before the run), optimized, unbatched and on a plain pool.
// Noise on a shared machine comes and goes over seconds, so the variants take turns: ROUNDS
// rounds of a few seconds each, the order rotated every round so that no variant always runs
// first; req/s is the median round, and a ratio to bare is the median over rounds of the ratio
// within each round.
//
// BENCH_SECONDS sets the measured seconds per variant per round (default 2, so 8 s per cell);
// BENCH_CLIENTS the client counts. The default run takes about 8 minutes.
import { availableParallelism, cpus, loadavg } from 'node:os'
import { sql } from 'kysely'
import pg from 'pg'
import { migrate } from '../src/index.ts'
import { createDatabase, dropDatabase, uniqueDatabaseName, withDatabase } from '../tools/databases.ts'
import { startLocalPostgres } from '../tools/local-postgres.ts'
import { serverCpuReader } from './cpu.ts'
import { combine, connectCounted, pairedRatio, runRound, walReader, type CellResult, type Counter, type Meters, type RoundResult } from './measure.ts'
import { createTables, scenarios, storeKeys, poolFor, variant, variantNames, type BenchDatabase, type Scenario, type StoredKey, type VariantName } from './scenarios.ts'
import { fixed, percentile, signed, table } from './stats.ts'

// BENCH_CLIENTS=8 (a comma-separated list) runs fewer cells while iterating; the summary needs 8.
const CLIENTS = (process.env.BENCH_CLIENTS ?? '1,8,32').split(',').map(Number)
if (CLIENTS.some((count) => !Number.isInteger(count) || count < 1)) throw new Error(`BENCH_CLIENTS must list client counts; got ${process.env.BENCH_CLIENTS}`)
const ROUNDS = 4
// A multiple of every client count: each client then replays keys no other client touches (see
// measure.ts), so replays measure the lookup, not waits on one another's advisory locks.
const REPLAY_KEYS = 1024
const GOAL_CLIENTS = 8

const seconds = Number(process.env.BENCH_SECONDS ?? 2)
if (!(seconds > 0)) throw new Error(`BENCH_SECONDS must be a positive number of seconds; got ${process.env.BENCH_SECONDS}`)
// The first round warms the code paths and opens the pool; later ones only let the previous
// variant's effects (its hot pages, its autovacuum trigger) settle a little.
const WARMUP_SECONDS = [1, 0.25]

// Ctrl-C stops the clients and still drops the database: the server may be shared.
const interrupt = new AbortController()
process.once('SIGINT', () => interrupt.abort(new Error('interrupted')))

type Row = CellResult & { vsBare: number }
type Cells = Map<string, Row>

const server = await startLocalPostgres({ log: (line) => console.error(line), durable: true })
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
    const meters: Meters = { counter, wal: await walReader(monitor), serverCpu: await serverCpuReader(monitor) }
    const { replayKeys, frameTrips } = await setUp(url, counter)
    const cells: Cells = new Map()
    for (const scenario of scenarios) {
      for (const clients of CLIENTS) {
        const rows = await measureTable(url, scenario, clients, replayKeys.get(scenario)!, meters)
        for (const [name, cell] of rows) cells.set(`${scenario.name}|${clients}|${name}`, cell)
        console.log(`\n${scenario.name}, ${clients} client${clients === 1 ? '' : 's'}`)
        console.log(formatTable(rows))
      }
    }
    if (CLIENTS.includes(GOAL_CLIENTS)) console.log(`\n${summary(cells, frameTrips)}`)
    console.log(`Load average at the end: ${loadAverage()}`)
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
  // Other work on the machine is the main source of noise; the load average tells how much there was.
  console.log(`Node ${process.version}, ${availableParallelism()} CPUs (${cpus()[0]?.model ?? 'unknown'}), load average ${loadAverage()}`)
  console.log(
    `Each cell: ${ROUNDS} rounds of ${seconds} s measured, variants taking turns (order rotated each round), after a warm-up of ` +
      `${WARMUP_SECONDS[0]} s (first round) or ${WARMUP_SECONDS[1]} s. req/s: median round; spread: (fastest - slowest) / median round; ` +
      "vs bare: the median over rounds of the variant's req/s over bare's in the same round (noise that lasts a round moves both); " +
      'latency, round trips and WAL: all rounds.',
  )
  console.log(
    'Round trips are counted at the pg client (BEGIN and COMMIT included). WAL is the cluster-wide ' +
      'pg_current_wal_insert_lsn() delta over the measured seconds, per request.',
  )
  console.log(
    'node µs/req: CPU (user + system) of this process, which runs the clients, kysely and node-postgres; pg µs/req: CPU of ' +
      "the server's processes (when the server runs on this machine); CPU vs bare: bare's total CPU per request over the variant's.",
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
    // The frame a replay is measured against: BEGIN and COMMIT as a plain pool sends them (through
    // optimizedDialect an empty transaction sends nothing at all, which is no frame).
    const plain = connectCounted<BenchDatabase>(url, 1, counter, 'plain')
    try {
      const before = counter.queries
      await plain.transaction().execute(async () => {})
      return { replayKeys, frameTrips: counter.queries - before }
    } finally {
      await plain.destroy()
    }
  } finally {
    await db.destroy()
  }
}

async function measureTable(url: string, scenario: Scenario, clients: number, replayKeys: StoredKey[], meters: Meters) {
  const pools = new Map((['plain', 'unbatched', 'optimized'] as const).map((kind) => [kind, connectCounted<BenchDatabase>(url, clients, meters.counter, kind)]))
  try {
    const rounds = new Map<VariantName, RoundResult[]>(variantNames.map((name) => [name, []]))
    for (let round = 0; round < ROUNDS; round++) {
      const warmupMs = WARMUP_SECONDS[Math.min(round, 1)]! * 1000
      for (const name of rotate(variantNames, round)) {
        const request = variant(pools.get(poolFor(name))!, scenario, name, replayKeys)
        rounds.get(name)!.push(await runRound(request, clients, warmupMs, seconds * 1000, meters, interrupt.signal))
      }
    }
    const bare = rounds.get('bare')!
    return new Map([...rounds].map(([name, results]) => [name, { ...combine(results), vsBare: pairedRatio(results, bare) }]))
  } finally {
    await Promise.all([...pools.values()].map((db) => db.destroy()))
  }
}

function loadAverage(): string {
  return loadavg()
    .map((load) => load.toFixed(2))
    .join(' ')
}

function rotate<T>(items: T[], by: number): T[] {
  const start = by % items.length
  return [...items.slice(start), ...items.slice(0, start)]
}

function formatTable(rows: Map<VariantName, Row>): string {
  const bare = rows.get('bare')!
  const header = ['variant', 'req/s', 'spread', 'p50 ms', 'p99 ms', 'trips/req', 'vs bare', 'WAL B/req', 'WAL vs bare', 'node µs/req', 'pg µs/req', 'CPU vs bare']
  const body = [...rows].map(([name, cell]) => [
    name,
    fixed(cell.rate, 0),
    `${fixed(cell.spread * 100, 0)}%`,
    fixed(percentile(cell.latenciesMs, 50), 2),
    fixed(percentile(cell.latenciesMs, 99), 2),
    fixed(cell.trips, 2),
    fixed(cell.vsBare, 2),
    fixed(cell.walPerRequest, 0),
    cell.walPerRequest === undefined || bare.walPerRequest === undefined ? 'n/a' : signed(cell.walPerRequest - bare.walPerRequest),
    fixed(cell.nodeCpuPerRequestUs, 0),
    cell.serverCpuPerRequestUs === undefined ? 'n/a' : fixed(cell.serverCpuPerRequestUs, 0),
    // Bare's CPU per request over this variant's: the throughput ratio CPU alone would predict.
    cell.serverCpuPerRequestUs === undefined || bare.serverCpuPerRequestUs === undefined
      ? 'n/a'
      : fixed((bare.nodeCpuPerRequestUs + bare.serverCpuPerRequestUs) / (cell.nodeCpuPerRequestUs + cell.serverCpuPerRequestUs), 2),
  ])
  return table(header, body)
}

/** One line against the goals at GOAL_CLIENTS clients; a miss is reported, never fatal. */
function summary(cells: Cells, frameTrips: number): string {
  const cell = (scenario: Scenario, name: VariantName) => cells.get(`${scenario.name}|${GOAL_CLIENTS}|${name}`)!
  const ratio = (scenario: Scenario, name: VariantName) => cell(scenario, name).vsBare
  const verdict = (ok: boolean) => (ok ? 'PASS' : 'MISS')
  const atLeast = (value: number, goal: number) => `${value.toFixed(2)} ${verdict(value >= goal)}`
  const atMost = (value: number, goal: number) => `${value.toFixed(2)} ${verdict(value <= goal)}`
  const [insert, threeStatements] = scenarios as [Scenario, Scenario]
  // The same extra statements wrap both business transactions; take the worse, should they differ.
  const extra = (name: VariantName) => Math.max(...scenarios.map((scenario) => cell(scenario, name).trips - cell(scenario, 'bare').trips))
  const replayTrips = Math.max(...scenarios.map((scenario) => cell(scenario, 'replay').trips)) - frameTrips
  return [
    `Goals at ${GOAL_CLIENTS} clients:`,
    `first/bare single insert ${atLeast(ratio(insert, 'first'), 0.6)}, with savepoint ${atLeast(ratio(insert, 'first, savepoint'), 0.6)} (>= 0.60);`,
    `first/bare three statements ${atLeast(ratio(threeStatements, 'first'), 0.75)}, with savepoint ${atLeast(ratio(threeStatements, 'first, savepoint'), 0.75)} (>= 0.75);`,
    `replay/bare single insert ${atLeast(ratio(insert, 'replay'), 1.5)}, three statements ${atLeast(ratio(threeStatements, 'replay'), 1.5)} (>= 1.50);`,
    `extra round trips per first call ${atMost(extra('first'), 2)}, with savepoint ${atMost(extra('first, savepoint'), 2)} (<= 2);`,
    `round trips per replay beyond BEGIN/COMMIT ${atMost(replayTrips, 1)} (<= 1)`,
  ].join(' ')
}
