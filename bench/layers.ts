// npm run bench:layers: what withIdempotency costs on each data layer, against that layer's own
// bare transaction. For every layer of bench/data-layers.ts (kysely on a plain PostgresDialect
// and on optimizedDialect, node-postgres, Drizzle on node-postgres, Knex, Prisma through
// @prisma/adapter-pg, postgres.js), the single insert of the core benchmark, written as a user of
// that layer writes it, runs three ways:
// - bare: in the layer's own transaction, no library;
// - first: the same, inside the layer's withIdempotency, a fresh key each request;
// - replay: the layer's withIdempotency on keys stored before the rounds (the insert never runs).
// The core benchmark's rounds (measure.ts): every layer's variants take turns, the order rotated
// each round; req/s is the median round, and a ratio to the layer's own bare is the median over
// rounds of the ratio within each round, so noise that lasts a round moves both sides.
//
// Round trips and statements per call are counted on the wire (wire-counter.ts: every Sync and
// simple Query, every Execute), over calls made one at a time after the timed rounds, so each
// count is exact; beside them, what the library's design adds on the layer (bench/floor.ts
// measures what those statements cost at the least).
//
// BENCH_CLIENTS (default 8), BENCH_ROUNDS (default 4), BENCH_SECONDS measured per variant per round
// (default 1.25), BENCH_LAYERS (a comma-separated list of words a layer's name contains, to run
// fewer). The default run takes about 3 minutes.
import { randomUUID } from 'node:crypto'
import { Kysely, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import { migrate } from '../src/index.ts'
import { serverCpuReader } from './cpu.ts'
import { dataLayers, type DataLayer, type OpenLayer } from './data-layers.ts'
import { benchPool, combine, pairedRatio, runRound, type Meters, type RoundResult } from './measure.ts'
import { createTables, randomDeposit, scenarios, type Request, type StoredKey } from './scenarios.ts'
import { fixed, signed, table } from './stats.ts'
import { loadAverage, printHeader, withBenchDatabase } from './under-load.ts'
import { watchWire, type WireCounts } from './wire-counter.ts'

const CLIENTS = whole('BENCH_CLIENTS', 8)
const ROUNDS = whole('BENCH_ROUNDS', 4)
const seconds = Number(process.env.BENCH_SECONDS ?? 1.25)
if (!(seconds > 0)) throw new Error(`BENCH_SECONDS must be a positive number of seconds; got ${process.env.BENCH_SECONDS}`)
const only = process.env.BENCH_LAYERS?.toLowerCase().split(',')
const layers = dataLayers.filter((layer) => only === undefined || only.some((word) => layer.name.toLowerCase().includes(word.trim())))
if (layers.length === 0) throw new Error(`BENCH_LAYERS names no layer of: ${dataLayers.map((layer) => layer.name).join('; ')}`)
// A multiple of every client count up to 64: each client replays keys no other client touches.
const REPLAY_KEYS = 512
// Calls per variant, one at a time, over which round trips and statements are counted.
const CENSUS_CALLS = 50
// The first round warms each layer's code and opens its connections; later ones only let the
// previous variant's effects settle.
const WARMUP_SECONDS = [1, 0.25]
const { scope } = scenarios[0]!

type Variant = 'bare' | 'first' | 'replay'
const VARIANTS: Variant[] = ['bare', 'first', 'replay']

// Before any connection opens, so every socket is counted from its first byte.
const wire = watchWire()

await withBenchDatabase('pgidem_bench_layers', bench)

async function bench(url: string, origin: string, signal: AbortSignal): Promise<void> {
  const monitor = new pg.Client({ connectionString: url })
  await monitor.connect()
  const opened = new Map<DataLayer, OpenLayer<any>>()
  try {
    await printHeader(monitor, 'pg-idempotency benchmark: per data layer', origin, [
      `${CLIENTS} clients, ${ROUNDS} rounds of ${seconds} s per variant, every layer's variants taking turns (order rotated each round). ` +
        "req/s: median round; vs bare: the median over rounds of the variant's req/s over the same layer's bare in the same round; " +
        `statements and trips per call: counted on the wire over ${CENSUS_CALLS} calls made one at a time; design: what the library adds on that layer ` +
        '(extra statements / extra round trips); node µs and pg µs: CPU per call of this process and of the server.',
    ])
    await setUp(url)
    for (const layer of layers) opened.set(layer, layer.open(url, CLIENTS))
    const requests = new Map<DataLayer, Record<Variant, Request>>()
    for (const [layer, open] of opened) requests.set(layer, variants(open, await storeKeys(open)))
    await sql`analyze`.execute(new Kysely({ dialect: new PostgresDialect({ pool: benchPool(url, 1) }) }))
    // No WAL reader: its query on the monitor would count among the round's statements.
    const meters: Meters = { counter: wire, wal: undefined, serverCpu: await serverCpuReader(monitor) }
    const rounds = new Map(layers.map((layer) => [layer, new Map(VARIANTS.map((variant) => [variant, [] as RoundResult[]]))]))
    for (let round = 0; round < ROUNDS; round++) {
      const warmupMs = WARMUP_SECONDS[Math.min(round, 1)]! * 1000
      for (const layer of rotate(layers, round)) {
        for (const variant of rotate(VARIANTS, round)) {
          const result = await runRound(requests.get(layer)![variant], CLIENTS, warmupMs, seconds * 1000, meters, signal)
          rounds.get(layer)!.get(variant)!.push(result)
        }
      }
    }
    const counts = new Map<DataLayer, Record<Variant, Census>>()
    for (const layer of layers) counts.set(layer, await census(requests.get(layer)!))
    console.log(`\n${report(rounds, counts)}`)
    console.log(`Load average at the end: ${loadAverage()}`)
  } finally {
    await Promise.all([...opened.values()].map((open) => open.close()))
    await monitor.end()
  }
}

async function setUp(url: string): Promise<void> {
  const db = new Kysely<any>({ dialect: new PostgresDialect({ pool: benchPool(url, 1) }) })
  try {
    await migrate(db)
    await createTables(db)
  } finally {
    await db.destroy()
  }
}

/** The three variants on one layer; `slot` picks a replay's key (see measure.ts). */
function variants(layer: OpenLayer<any>, replayKeys: StoredKey[]): Record<Variant, Request> {
  return {
    async bare() {
      const deposit = randomDeposit()
      await layer.transaction((tx) => layer.insert(tx, deposit))
    },
    async first() {
      const deposit = randomDeposit()
      const outcome = await layer.transaction((tx) => layer.withIdempotency(tx, { scope, key: randomUUID(), request: deposit }, (tx) => layer.insert(tx, deposit)))
      if (outcome.replayed) throw new Error('a fresh key was replayed')
    },
    async replay(slot) {
      const { key, deposit } = replayKeys[slot % replayKeys.length]!
      const outcome = await layer.transaction((tx) =>
        layer.withIdempotency(tx, { scope, key, request: deposit }, () => {
          throw new Error('a replay ran the business transaction')
        }),
      )
      if (!outcome.replayed) throw new Error('a stored key was not replayed')
    },
  }
}

/** First calls on REPLAY_KEYS new keys through the layer itself, CLIENTS at a time. */
async function storeKeys(layer: OpenLayer<any>): Promise<StoredKey[]> {
  const keys = Array.from({ length: REPLAY_KEYS }, () => ({ key: randomUUID(), deposit: randomDeposit() }))
  let next = 0
  const worker = async () => {
    for (let stored = keys[next++]; stored !== undefined; stored = keys[next++]) {
      const { key, deposit } = stored
      await layer.transaction((tx) => layer.withIdempotency(tx, { scope, key, request: deposit }, (tx) => layer.insert(tx, deposit)))
    }
  }
  await Promise.all(Array.from({ length: CLIENTS }, worker))
  return keys
}

/** Round trips and statements per call. */
interface Census {
  trips: number
  statements: number
}

async function census(requests: Record<Variant, Request>): Promise<Record<Variant, Census>> {
  const counted = {} as Record<Variant, Census>
  for (const variant of VARIANTS) {
    const before = { ...wire }
    for (let call = 0; call < CENSUS_CALLS; call++) await requests[variant](call)
    counted[variant] = { trips: (wire.queries - before.queries) / CENSUS_CALLS, statements: (wire.statements - before.statements) / CENSUS_CALLS }
  }
  return counted
}

function report(rounds: Map<DataLayer, Map<Variant, RoundResult[]>>, counts: Map<DataLayer, Record<Variant, Census>>): string {
  const rows: string[][] = []
  for (const [layer, byVariant] of rounds) {
    const bare = byVariant.get('bare')!
    const counted = counts.get(layer)!
    for (const [variant, results] of byVariant) {
      const cell = combine(results)
      const extra = (field: keyof Census) => counted[variant][field] - counted.bare[field]
      const design = variant === 'bare' ? '' : `${signed(layer.design.statements[variant])} / ${signed(layer.design.trips[variant])}`
      rows.push([
        variant === 'bare' ? layer.name : '',
        variant,
        fixed(cell.rate, 0),
        `${fixed(cell.spread * 100, 0)}%`,
        fixed(pairedRatio(results, bare), 2),
        fixed(counted[variant].statements, 2),
        fixed(counted[variant].trips, 2),
        variant === 'bare' ? '' : `${signedFraction(extra('statements'))} / ${signedFraction(extra('trips'))}`,
        design,
        fixed(cell.nodeCpuPerRequestUs, 0),
        fixed(cell.serverCpuPerRequestUs, 0),
      ])
    }
  }
  const header = ['layer', 'variant', 'req/s', 'spread', 'vs bare', 'statements', 'trips', 'extra stmts / trips', 'design', 'node µs', 'pg µs']
  return table(header, rows)
}

function signedFraction(value: number): string {
  return Number.isInteger(value) ? signed(value) : `${value > 0 ? '+' : ''}${value.toFixed(2)}`
}

function rotate<T>(items: T[], by: number): T[] {
  const start = by % items.length
  return [...items.slice(start), ...items.slice(0, start)]
}

function whole(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback)
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a whole number, 1 or more; got ${process.env[name]}`)
  return value
}
