// npm run bench (second part): paired A/Bs, which resolve a difference of a few percent that the
// full table's rounds cannot. Two variants alternate in short rounds, the order swapped every
// pair; each pair gives a ratio, and the median and quartiles of those ratios are printed, with
// the median CPU per request each side of the wire. Pairs a second apart see the same machine.
//
// - first call over bare: what withIdempotency costs (optimizedDialect against bare on a plain
//   pool), and where: the extra CPU per request in Node and on the server;
// - batched over unbatched: what optimizedDialect's batching alone is worth ({ batching: false } keeps
//   the same prepared statements, each in a round trip of its own), for first calls and replays.
// Last, the library's own JavaScript per call, measured alone with a stand-in transaction that
// answers at once, so none of kysely, node-postgres or the server is in it.
//
// BENCH_PAIRS sets the pairs per comparison (default 10), BENCH_SECONDS the measured seconds of a
// round (default 1.5), at 8 clients.
import { randomUUID } from 'node:crypto'
import { sql, type CompiledQuery, type Transaction } from 'kysely'
import pg from 'pg'
import { migrate, withIdempotency } from '../src/index.ts'
import { createDatabase, dropDatabase, uniqueDatabaseName, withDatabase } from '../tools/databases.ts'
import { startLocalPostgres } from '../tools/local-postgres.ts'
import { nodeCpu, serverCpuReader } from './cpu.ts'
import { connectCounted, runRound, type Meters } from './measure.ts'
import { createTables, randomDeposit, scenarios, storeKeys, variant, type BenchDatabase, type Request } from './scenarios.ts'
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
const name = uniqueDatabaseName('pgidem_bench_paired')
await createDatabase(server.url, name)
const url = withDatabase(server.url, name)
const monitor = new pg.Client({ connectionString: url })
const meters: Meters = { counter: { queries: 0 }, wal: undefined, serverCpu: undefined }
const plain = connectCounted<BenchDatabase>(url, CLIENTS, meters.counter, 'plain')
const batched = connectCounted<BenchDatabase>(url, CLIENTS, meters.counter)
const unbatched = connectCounted<BenchDatabase>(url, CLIENTS, meters.counter, 'unbatched')
try {
  await monitor.connect()
  meters.serverCpu = await serverCpuReader(monitor)
  await migrate(batched)
  await createTables(batched)
  const rows: string[][] = []
  for (const scenario of scenarios) {
    const keys = await storeKeys(batched, scenario, 1024, CLIENTS)
    await sql`analyze`.execute(batched)
    const comparisons: Array<[string, Request, Request]> = [
      ['first call over bare', variant(batched, scenario, 'first', keys), variant(plain, scenario, 'bare', keys)],
      ['batched over unbatched, first call', variant(batched, scenario, 'first', keys), variant(unbatched, scenario, 'first, unbatched', keys)],
      ['batched over unbatched, replay', variant(batched, scenario, 'replay', keys), variant(unbatched, scenario, 'replay, unbatched', keys)],
    ]
    for (const [comparison, a, b] of comparisons) {
      const { ratios, extraNodeUs, extraServerUs } = await pairs(a, b)
      const quartile = (q: number) => ratios[Math.min(ratios.length - 1, Math.floor(q * ratios.length))]!
      rows.push([scenario.name.split(' (')[0]!, comparison, fixed(median(ratios), 2), `${fixed(quartile(0.25), 2)} to ${fixed(quartile(0.75), 2)}`, signed(extraNodeUs), signed(extraServerUs)])
    }
  }
  console.log(`\nPaired A/B, ${CLIENTS} clients, ${PAIRS} pairs of ${seconds} s rounds (A over B; extra CPU: A's median µs per request minus B's)`)
  console.log(table(['business transaction', 'A over B', 'median', 'quartiles', 'extra Node µs', 'extra server µs'], rows))
  console.log(`\nThe library's own JavaScript per first call, with a stand-in transaction: ${fixed(await libraryJavaScriptUs(), 1)} µs of CPU`)
} finally {
  await monitor.end()
  await Promise.all([plain.destroy(), batched.destroy(), unbatched.destroy()])
  await dropDatabase(server.url, name)
  await server.stop()
}

function signed(value: number | undefined): string {
  if (value === undefined) return '-'
  return `${value >= 0 ? '+' : ''}${fixed(value, 0)}`
}

/** PAIRS ratios of a's throughput over b's, each from two adjacent rounds, and a's extra CPU per request. */
async function pairs(a: Request, b: Request) {
  const ratios: number[] = []
  const cpu = { aNode: [] as number[], bNode: [] as number[], aServer: [] as number[], bServer: [] as number[] }
  for (let pair = 0; pair < PAIRS; pair++) {
    const [first, second] = pair % 2 === 0 ? [a, b] : [b, a]
    const one = await runRound(first, CLIENTS, 250, seconds * 1000, meters, interrupt.signal)
    const two = await runRound(second, CLIENTS, 250, seconds * 1000, meters, interrupt.signal)
    const [ra, rb] = pair % 2 === 0 ? [one, two] : [two, one]
    ratios.push(ra.requests / ra.seconds / (rb.requests / rb.seconds))
    cpu.aNode.push(ra.nodeCpuUs / ra.requests)
    cpu.bNode.push(rb.nodeCpuUs / rb.requests)
    if (ra.serverCpuUs !== undefined && rb.serverCpuUs !== undefined) {
      cpu.aServer.push(ra.serverCpuUs / ra.requests)
      cpu.bServer.push(rb.serverCpuUs / rb.requests)
    }
  }
  const extraServerUs = cpu.aServer.length === 0 ? undefined : median(cpu.aServer) - median(cpu.bServer)
  return { ratios: ratios.sort((x, y) => x - y), extraNodeUs: median(cpu.aNode) - median(cpu.bNode), extraServerUs }
}

/**
 * withIdempotency's first call on a stand-in transaction whose every statement answers at once:
 * key checks, the request's fingerprint, strict JSON of the result, the call's bookkeeping.
 * Minus the same loop's work without withIdempotency (a key, a request, fn).
 */
async function libraryJavaScriptUs(): Promise<number> {
  const created = new Date()
  const standIn = {
    isTransaction: true,
    async executeQuery(query: CompiledQuery) {
      if (query.sql.includes('claim_idempotency_key')) return { rows: [{ outcome: 'new', status: null, fingerprint: null, response: null, created_at: created }] }
      return { rows: [{ stored: 1 }], numAffectedRows: 1n }
    },
  } as unknown as Transaction<BenchDatabase>
  const fn = async () => ({ id: '1234567' })
  const { scope } = scenarios[0]!
  const perCall = async (call: () => Promise<unknown>) => {
    const calls = 100_000
    for (let i = 0; i < 10_000; i++) await call()
    const before = nodeCpu()
    for (let i = 0; i < calls; i++) await call()
    return (nodeCpu() - before) / calls
  }
  const library = await perCall(() => withIdempotency(standIn, { scope, key: randomUUID(), request: randomDeposit() }, fn))
  const loop = await perCall(async () => [randomUUID(), randomDeposit(), await fn()])
  return library - loop
}
