// Driving concurrent clients, and what is measured around them: time, statements, WAL.
import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import { optimizedDialect } from '../src/index.ts'
import type { PoolKind, Request } from './scenarios.ts'
import { nodeCpu, type CpuReader } from './cpu.ts'
import { median } from './stats.ts'

/** Statements sent to the server by the pools that share it. */
export interface Counter {
  queries: number
}

/**
 * A Kysely on a pool of `max` connections whose every `client.query` is counted: each is one
 * round trip (one Sync). Counting at the pg client rather than in a Kysely `log` callback sees
 * exactly what goes over the wire, BEGIN, COMMIT and the library's savepoint included, and adds
 * no awaits to the timed path.
 */
export function connectCounted<DB>(url: string, max: number, counter: Counter, kind: PoolKind = 'optimized'): Kysely<DB> {
  const pool = benchPool(url, max)
  // It counts what goes to node-postgres, so a BEGIN held back is not counted and a batch counts once.
  pool.on('connect', (client) => {
    const query = client.query.bind(client) as (...args: unknown[]) => unknown
    ;(client as unknown as { query: typeof query }).query = (...args) => {
      counter.queries++
      return query(...args)
    }
  })
  // The recommended set-up: the library's statements prepared and sent with BEGIN and COMMIT.
  const dialect = kind === 'plain' ? new PostgresDialect({ pool }) : optimizedDialect({ pool }, { batching: kind === 'optimized' })
  return new Kysely<DB>({ dialect })
}

/** A node-postgres pool of `max` connections as every benchmark opens one. */
export function benchPool(url: string, max: number): pg.Pool {
  // Idle connections stay open: while the other variants of a round run, a pool's connections sit
  // idle for longer than node-postgres's default 10 s, and reconnecting would bill the next
  // variant for forking and warming a backend (and drop the old one's CPU from the server's sum).
  const pool = new pg.Pool({ connectionString: url, max, idleTimeoutMillis: 0 })
  // A connection that dies between queries emits 'error', which unheard would crash the run before
  // it drops its database; the next query on it fails and stops the run instead.
  const ignore = () => {}
  pool.on('error', ignore)
  pool.on('connect', (client) => client.on('error', ignore))
  return pool
}

/** Reads the server's WAL insert position in bytes. */
export type WalReader = () => Promise<bigint>

/**
 * The WAL insert position rather than `pg_stat_wal.wal_bytes`: a backend publishes its WAL
 * counters at most once a second, and an idle one only after 10 s, so a delta taken right after
 * a 2 s round misses most of it (0 bytes, measured on PostgreSQL 18). The insert position moves as each record is written. Both are
 * cluster-wide, so on a shared server other sessions' writes land in the figure too.
 * Undefined where the position cannot be read (a standby).
 */
export async function walReader(monitor: pg.Client): Promise<WalReader | undefined> {
  const read = async () => {
    const { rows } = await monitor.query<{ lsn: string }>(`select pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::text as lsn`)
    return BigInt(rows[0]!.lsn)
  }
  try {
    await read()
    return read
  } catch {
    return undefined
  }
}

/** One variant's measured seconds in one round. */
export interface RoundResult {
  requests: number
  seconds: number
  latenciesMs: number[]
  queries: number
  walBytes: bigint | undefined
  /** CPU microseconds this process used. */
  nodeCpuUs: number
  /** CPU microseconds the server's processes used, where the server runs on this machine. */
  serverCpuUs: number | undefined
}

/** What a round reads besides the clock. */
export interface Meters {
  counter: Counter
  wal: WalReader | undefined
  serverCpu: CpuReader | undefined
}

/** A warm-up of `warmupMs`, then `measureMs` measured, each with `clients` loops back to back. */
export async function runRound(
  request: Request,
  clients: number,
  warmupMs: number,
  measureMs: number,
  { counter, wal, serverCpu }: Meters,
  signal: AbortSignal,
): Promise<RoundResult> {
  await drive(request, clients, warmupMs, signal)
  const queriesBefore = counter.queries
  const walBefore = await wal?.()
  const nodeBefore = nodeCpu()
  const serverBefore = serverCpu?.()
  const { latencies, elapsedMs } = await drive(request, clients, measureMs, signal)
  const serverAfter = serverCpu?.()
  const nodeAfter = nodeCpu()
  const walAfter = await wal?.()
  return {
    requests: latencies.length,
    seconds: elapsedMs / 1000,
    latenciesMs: latencies,
    queries: counter.queries - queriesBefore,
    walBytes: walBefore === undefined || walAfter === undefined ? undefined : walAfter - walBefore,
    nodeCpuUs: nodeAfter - nodeBefore,
    serverCpuUs: serverBefore === undefined || serverAfter === undefined ? undefined : serverAfter - serverBefore,
  }
}

// Every loop finishes its request in flight before this returns, so each statement counted between
// two calls belongs to a request timed in between, and round trips per request come out exact.
async function drive(request: Request, clients: number, ms: number, signal: AbortSignal) {
  const latencies: number[] = []
  const start = performance.now()
  const deadline = start + ms
  let failure: { error: unknown } | undefined
  const loop = async (client: number) => {
    for (let seq = 0; failure === undefined && !signal.aborted && performance.now() < deadline; seq++) {
      const begun = performance.now()
      try {
        // Loop `client` only ever passes slots congruent to `client` modulo `clients`.
        await request(client + seq * clients)
      } catch (error) {
        failure ??= { error }
        return
      }
      latencies.push(performance.now() - begun)
    }
  }
  await Promise.all(Array.from({ length: clients }, (_, client) => loop(client)))
  const elapsedMs = performance.now() - start
  if (failure) throw failure.error
  signal.throwIfAborted()
  return { latencies, elapsedMs }
}

/** One variant's rounds taken together. */
export interface CellResult {
  /** The median round's requests per second: a round that a neighbour disturbed does not move it. */
  rate: number
  /** (fastest - slowest) / median round, a measure of the noise. */
  spread: number
  /** Every round's requests, sorted ascending. */
  latenciesMs: Float64Array
  trips: number
  walPerRequest: number | undefined
  nodeCpuPerRequestUs: number
  serverCpuPerRequestUs: number | undefined
}

/**
 * The median over rounds of `rounds[i]`'s rate over `baseline[i]`'s: each round's variants run
 * within seconds of one another, so a slow spell of the machine moves both sides of a ratio.
 */
export function pairedRatio(rounds: RoundResult[], baseline: RoundResult[]): number {
  return median(rounds.map((round, index) => round.requests / round.seconds / (baseline[index]!.requests / baseline[index]!.seconds)))
}

export function combine(rounds: RoundResult[]): CellResult {
  const rates = rounds.map((round) => round.requests / round.seconds)
  const rate = median(rates)
  const requests = rounds.reduce((sum, round) => sum + round.requests, 0)
  const queries = rounds.reduce((sum, round) => sum + round.queries, 0)
  const walBytes = rounds.every((round) => round.walBytes !== undefined)
    ? rounds.reduce((sum, round) => sum + round.walBytes!, 0n)
    : undefined
  const serverCpu = rounds.every((round) => round.serverCpuUs !== undefined)
    ? rounds.reduce((sum, round) => sum + round.serverCpuUs!, 0)
    : undefined
  return {
    rate,
    spread: (Math.max(...rates) - Math.min(...rates)) / rate,
    latenciesMs: Float64Array.from(rounds.flatMap((round) => round.latenciesMs)).sort(),
    trips: queries / requests,
    walPerRequest: walBytes === undefined ? undefined : Number(walBytes) / requests,
    nodeCpuPerRequestUs: rounds.reduce((sum, round) => sum + round.nodeCpuUs, 0) / requests,
    serverCpuPerRequestUs: serverCpu === undefined ? undefined : serverCpu / requests,
  }
}
