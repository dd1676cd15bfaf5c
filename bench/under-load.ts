// Shared by deletion.ts and sweep.ts: a throw-away database on a durable server, client loops
// timed by phase while maintenance work runs beside them, and a sampler of lock waits.
import { availableParallelism, cpus, loadavg } from 'node:os'
import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import { createDatabase, dropDatabase, uniqueDatabaseName, withDatabase } from '../tools/databases.ts'
import { startLocalPostgres } from '../tools/local-postgres.ts'
import { fixed, percentile } from './stats.ts'

/**
 * Runs `work` on a fresh database and drops it afterwards, on failure and Ctrl-C too (the server
 * may be shared). Durable commits: maintenance batches commit one by one, and each commit's
 * flush is part of what they cost the other sessions.
 */
export async function withBenchDatabase(prefix: string, work: (url: string, origin: string, signal: AbortSignal) => Promise<void>): Promise<void> {
  const interrupt = new AbortController()
  process.once('SIGINT', () => interrupt.abort(new Error('interrupted')))
  const server = await startLocalPostgres({ log: (line) => console.error(line), durable: true })
  try {
    const database = uniqueDatabaseName(prefix)
    await createDatabase(server.url, database)
    try {
      await work(withDatabase(server.url, database), server.description, interrupt.signal)
    } finally {
      await dropDatabase(server.url, database)
    }
  } finally {
    await server.stop()
  }
}

/**
 * A Kysely on its own pool whose sessions carry `name` as application_name, so the lock sampler
 * can tell whose backend waits.
 */
export function connectAs(url: string, max: number, name: string): Kysely<any> {
  const pool = new pg.Pool({ connectionString: url, max, application_name: name })
  // As in tools/databases.ts: an error on an idle connection must not crash the run before it drops its database.
  const ignore = () => {}
  pool.on('error', ignore)
  pool.on('connect', (client) => client.on('error', ignore))
  return new Kysely<any>({ dialect: new PostgresDialect({ pool }) })
}

export async function printHeader(monitor: pg.Client, title: string, origin: string, settings: string[]): Promise<void> {
  const { rows } = await monitor.query<Record<string, string>>(
    `select current_setting('server_version') as version, current_setting('fsync') as fsync,
            current_setting('synchronous_commit') as sync, current_setting('shared_buffers') as buffers`,
  )
  const s = rows[0]!
  console.log(title)
  console.log(`PostgreSQL ${s.version}, ${origin}, fsync=${s.fsync}, synchronous_commit=${s.sync}, shared_buffers=${s.buffers}`)
  console.log(`Node ${process.version}, ${availableParallelism()} CPUs (${cpus()[0]?.model ?? 'unknown'}), load average ${loadAverage()}`)
  for (const line of settings) console.log(line)
}

export function loadAverage(): string {
  return loadavg()
    .map((load) => load.toFixed(2))
    .join(' ')
}

export interface PhaseResult {
  /** Every request that started in the phase, ascending. */
  latenciesMs: Float64Array
  seconds: number
}

/**
 * `clients` loops sending `request` back to back until stopped. Each request counts in the phase
 * current when it started; a phase's seconds run from its `phase()` call to the next (or stop).
 */
export class Load {
  private current = 'warm-up'
  private started = performance.now()
  private readonly phases = new Map<string, { latencies: number[]; seconds: number }>()
  private stopped = false
  private failure: { error: unknown } | undefined
  private readonly loops: Promise<void>[]

  constructor(request: (client: number) => Promise<void>, clients: number, signal: AbortSignal) {
    this.phases.set(this.current, { latencies: [], seconds: 0 })
    const loop = async (client: number) => {
      while (!this.stopped && this.failure === undefined && !signal.aborted) {
        const phase = this.phases.get(this.current)!
        const begun = performance.now()
        try {
          await request(client)
        } catch (error) {
          this.failure ??= { error }
          return
        }
        phase.latencies.push(performance.now() - begun)
      }
    }
    this.loops = Array.from({ length: clients }, (_, client) => loop(client))
  }

  phase(name: string): void {
    this.closePhase()
    this.current = name
    this.phases.set(name, { latencies: [], seconds: 0 })
  }

  async stop(): Promise<Map<string, PhaseResult>> {
    this.closePhase()
    this.stopped = true
    await Promise.all(this.loops)
    if (this.failure) throw this.failure.error
    return new Map([...this.phases].map(([name, { latencies, seconds }]) => [name, { latenciesMs: Float64Array.from(latencies).sort(), seconds }]))
  }

  private closePhase() {
    const now = performance.now()
    this.phases.get(this.current)!.seconds = (now - this.started) / 1000
    this.started = now
  }
}

/** The longest heavyweight-lock wait one sample saw, and on what. */
export interface LockWait {
  ms: number
  /** application_name of the waiting backend. */
  who: string
  lock: string
}

export interface LockWaitSummary {
  samples: number
  /** Samples in which at least one backend of the database waited for a heavyweight lock. */
  samplesWithWaiter: number
  longest: LockWait | undefined
}

/**
 * Every `everyMs`, the backends of this database waiting for a heavyweight lock (`pg_locks` not
 * granted, i.e. wait_event_type 'Lock'): how long each has waited so far, from pg_locks.waitstart
 * (statement start when waitstart is not yet filled in). The longest seen per phase is a lower
 * bound on the longest wait: a wait is caught only while a sample runs, and only as long as it
 * had lasted then.
 */
export class LockWaitSampler {
  private current = 'warm-up'
  private readonly phases = new Map<string, LockWaitSummary>()
  private running = true
  private failure: { error: unknown } | undefined
  private readonly done: Promise<void>

  constructor(monitor: pg.Client, everyMs = 50) {
    this.phase(this.current)
    this.done = (async () => {
      while (this.running && this.failure === undefined) {
        const { rows } = await monitor.query<{ ms: number; who: string; lock: string }>(
          `select extract(epoch from clock_timestamp() - coalesce(l.waitstart, a.state_change)) * 1000 as ms,
                  a.application_name as who,
                  l.mode || ' on ' || l.locktype || coalesce(' ' || l.relation::regclass::text, '') as lock
             from pg_locks l join pg_stat_activity a on a.pid = l.pid
            where not l.granted and a.datname = current_database() and a.pid <> pg_backend_pid()
            order by 1 desc`,
        )
        const summary = this.phases.get(this.current)!
        summary.samples++
        if (rows[0]) {
          summary.samplesWithWaiter++
          const wait = { ...rows[0], ms: Number(rows[0].ms) }
          if (wait.ms > (summary.longest?.ms ?? -1)) summary.longest = wait
        }
        await new Promise((resolve) => setTimeout(resolve, everyMs))
      }
    })().catch((error: unknown) => {
      // Kept for stop(): a rejection nobody awaits yet would end the process before the cleanup.
      this.failure = { error }
    })
  }

  phase(name: string): void {
    this.current = name
    this.phases.set(name, { samples: 0, samplesWithWaiter: 0, longest: undefined })
  }

  async stop(): Promise<Map<string, LockWaitSummary>> {
    this.running = false
    await this.done
    if (this.failure) throw this.failure.error
    return this.phases
  }
}

/** p50, p99, max and rate of a phase, and each as a ratio to the baseline's. */
export function latencyCells(phase: PhaseResult, baseline: PhaseResult): string[] {
  const rate = (p: PhaseResult) => p.latenciesMs.length / p.seconds
  const p = (result: PhaseResult, q: number) => percentile(result.latenciesMs, q)
  return [
    String(phase.latenciesMs.length),
    fixed(phase.seconds, 1),
    fixed(rate(phase), 0),
    fixed(p(phase, 50), 2),
    fixed(p(phase, 99), 2),
    fixed(p(phase, 100), 1),
    fixed(rate(phase) / rate(baseline), 2),
    fixed(p(phase, 50) / p(baseline, 50), 2),
    fixed(p(phase, 99) / p(baseline, 99), 2),
    fixed(p(phase, 100) / p(baseline, 100), 2),
  ]
}

export const latencyHeader = ['n', 's', 'req/s', 'p50 ms', 'p99 ms', 'max ms', 'req/s x', 'p50 x', 'p99 x', 'max x']

export const lockWaitHeader = ['samples', 'with a waiter', 'longest ms', 'waiting backend', 'lock']

export function lockWaitCells(w: LockWaitSummary): string[] {
  return [String(w.samples), String(w.samplesWithWaiter), fixed(w.longest?.ms ?? 0, 1), w.longest?.who ?? '-', w.longest?.lock ?? '-']
}

export const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, ms)
    signal?.addEventListener('abort', () => (clearTimeout(timer), reject(signal.reason)), { once: true })
  })
