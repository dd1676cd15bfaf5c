// npm run bench (second part): what optimizePool's batching alone is worth, measured as a paired
// A/B. Batched and unbatched requests ({ batching: false }: the same prepared statements, each in
// a round trip of its own) alternate in short rounds, the order swapped every pair; each pair
// gives a ratio, and the median and quartiles of those ratios are printed. Pairs a second apart
// see the same machine, so this resolves a 5 % difference that the full table's rounds cannot.
//
// BENCH_PAIRS sets the pairs per comparison (default 10), BENCH_SECONDS the measured seconds of a
// round (default 1.5), at 8 clients.
import { sql } from 'kysely'
import { migrate } from '../src/index.ts'
import { createDatabase, dropDatabase, uniqueDatabaseName, withDatabase } from '../tools/databases.ts'
import { startLocalPostgres } from '../tools/local-postgres.ts'
import { connectCounted, runRound, type Meters } from './measure.ts'
import { createTables, scenarios, storeKeys, variant, type BenchDatabase, type Request } from './scenarios.ts'
import { fixed, median, table } from './stats.ts'

const CLIENTS = 8
const PAIRS = Number(process.env.BENCH_PAIRS ?? 10)
const seconds = Number(process.env.BENCH_SECONDS ?? 1.5)
if (!Number.isInteger(PAIRS) || PAIRS < 2) throw new Error(`BENCH_PAIRS must be a whole number of pairs, 2 or more; got ${process.env.BENCH_PAIRS}`)
if (!(seconds > 0)) throw new Error(`BENCH_SECONDS must be a positive number of seconds; got ${process.env.BENCH_SECONDS}`)

// Ctrl-C stops the clients and still drops the database: the server may be shared.
const interrupt = new AbortController()
process.once('SIGINT', () => interrupt.abort(new Error('interrupted')))

const server = await startLocalPostgres({ log: (line) => console.error(line), durable: true })
const name = uniqueDatabaseName('pgidem_bench_batching')
await createDatabase(server.url, name)
const url = withDatabase(server.url, name)
const meters: Meters = { counter: { queries: 0 }, wal: undefined, serverCpu: undefined }
const batched = connectCounted<BenchDatabase>(url, CLIENTS, meters.counter)
const unbatched = connectCounted<BenchDatabase>(url, CLIENTS, meters.counter, 'unbatched')
try {
  await migrate(batched)
  await createTables(batched)
  const rows: string[][] = []
  for (const scenario of scenarios) {
    const keys = await storeKeys(batched, scenario, 1024, CLIENTS)
    await sql`analyze`.execute(batched)
    for (const kind of ['first', 'replay'] as const) {
      const a = variant(batched, scenario, kind, keys)
      const b = variant(unbatched, scenario, kind === 'first' ? 'first, unbatched' : 'replay, unbatched', keys)
      const ratios = (await pairs(a, b)).sort((x, y) => x - y)
      const quartile = (q: number) => ratios[Math.min(ratios.length - 1, Math.floor(q * ratios.length))]!
      rows.push([scenario.name.split(' (')[0]!, kind, fixed(median(ratios), 2), `${fixed(quartile(0.25), 2)} to ${fixed(quartile(0.75), 2)}`])
    }
  }
  console.log(`\nBatching, paired A/B: optimizePool against { batching: false }, ${CLIENTS} clients, ${PAIRS} pairs of ${seconds} s rounds`)
  console.log(table(['business transaction', 'calls', 'batched/unbatched (median)', 'quartiles'], rows))
} finally {
  await Promise.all([batched.destroy(), unbatched.destroy()])
  await dropDatabase(server.url, name)
  await server.stop()
}

/** PAIRS ratios of a's throughput over b's, each from two adjacent rounds. */
async function pairs(a: Request, b: Request): Promise<number[]> {
  const ratios: number[] = []
  for (let pair = 0; pair < PAIRS; pair++) {
    const [first, second] = pair % 2 === 0 ? [a, b] : [b, a]
    const one = await runRound(first, CLIENTS, 250, seconds * 1000, meters, interrupt.signal)
    const two = await runRound(second, CLIENTS, 250, seconds * 1000, meters, interrupt.signal)
    const [ra, rb] = pair % 2 === 0 ? [one, two] : [two, one]
    ratios.push(ra.requests / ra.seconds / (rb.requests / rb.seconds))
  }
  return ratios
}
