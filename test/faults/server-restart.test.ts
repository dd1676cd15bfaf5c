// A server restarted under load: a PostgreSQL of the suite's own (never the machine's) is
// stopped in fast and in immediate mode while clients drive withIdempotency on a plain and an
// optimizedDialect, with transactions open, then started again. Afterwards every key ran at
// most once, nothing committed without its key, every success matches what is stored, and the
// process is still alive (the pools' 'error' events are listened to, as tools/databases.ts does).
import { randomUUID } from 'node:crypto'
import { sql, type Kysely } from 'kysely'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { migrate } from '../../src/index.ts'
import { connect, createDatabase, withDatabase } from '../../tools/databases.ts'
import { until } from './support/backends.ts'
import { createEffects } from './support/effects.ts'
import { startFaultServer, type FaultServer } from './support/fault-server.ts'
import { keyViolations } from './support/interleaving-model.ts'
import { invariantViolations, keyStates } from './support/invariants.ts'
import { startLoad } from './support/load.ts'
import type { Seen } from './support/model-ops.ts'
import { watchedPool, type WatchedPool } from './support/watched-pool.ts'
import { describeError, libraryErrorIn } from './support/typed-errors.ts'

const WORKERS = 8
let server: FaultServer
let admin: Kysely<any>
const pools: Record<string, Kysely<any>> = {}
const watched: WatchedPool[] = []
const seenBy: Partial<Record<'fast' | 'immediate', Seen[]>> = {}

beforeAll(async () => {
  server = await startFaultServer()
  await createDatabase(server.url, 'faults')
  const url = withDatabase(server.url, 'faults')
  admin = connect(url, 4)
  await migrate(admin)
  await createEffects(admin)
  watched.push(watchedPool(url, WORKERS / 2), watchedPool(url, WORKERS / 2, { optimized: true }))
  pools.plain = watched[0]!.db
  pools.optimized = watched[1]!.db
})
afterAll(async () => {
  await Promise.all([admin, ...Object.values(pools)].map((db) => db?.destroy()))
  await server?.destroy()
})

/** Transactions of the load that are open right now, by the server's own account. */
async function openTransactions(): Promise<number> {
  const { rows } = await sql<{ n: number }>`
    select count(*)::int as n from pg_stat_activity
     where datname = current_database() and pid <> pg_backend_pid() and xact_start is not null`.execute(admin)
  return rows[0]!.n
}

it.each(['fast', 'immediate'] as const)('%s shutdown and restart under load: at most once, all or nothing, every success as stored', async (mode) => {
  const scope = `faults:restart:${mode}`
  const errorsBefore = watched.reduce((sum, w) => sum + w.errors(), 0)
  const load = startLoad({ pools, admin, workers: WORKERS, keys: Array.from({ length: 30 }, () => randomUUID()), scope })
  await until('20 successes', async () => (load.successes() >= 20 ? true : undefined))
  await until('2 open transactions', async () => ((await openTransactions()) >= 2 ? true : undefined))
  await server.stop(mode)
  const failuresBefore = load.failures()
  await until('every worker to fail against the stopped server', async () => (load.failures() >= failuresBefore + WORKERS ? true : undefined))
  await server.start()
  const successesBefore = load.successes()
  await until('20 successes after the restart', async () => (load.successes() >= successesBefore + 20 ? true : undefined))
  const seen = await load.stop()

  const states = await keyStates(admin, load.keys)
  expect(keyViolations(states, seen)).toEqual([])
  expect(await invariantViolations(admin, load.keys, scope)).toEqual([])
  const committedFirstRuns = seen.filter((s) => s.committed && s.outcome && !s.outcome.replayed).length
  const storedKeys = states.filter((s) => s.status === 'completed').length
  // Connections that died idle emitted 'error'; the listeners kept the process alive.
  const poolErrors = watched.reduce((sum, w) => sum + w.errors(), 0) - errorsBefore
  console.log(
    `${mode} restart: ${seen.length} requests, ${committedFirstRuns} committed first runs, ${seen.filter((s) => !s.committed).length} failed, ${storedKeys} keys stored, ${poolErrors} pool 'error' events`,
  )
  // Every key stored by a known commit, or by a COMMIT whose answer the stop swallowed.
  expect(storedKeys).toBeGreaterThanOrEqual(committedFirstRuns)
  expect(storedKeys - committedFirstRuns).toBeLessThanOrEqual(seen.filter((s) => s.unknownOutcome && s.outcome?.replayed === false).length)
  seenBy[mode] = seen
})

it.each(['fast', 'immediate'] as const)('%s shutdown: what the library raised says "retry" (typed, retryable)', (mode) => {
  const seen = seenBy[mode]
  expect(seen, 'the restart test ran').toBeDefined()
  const typed = seen!.map((s) => libraryErrorIn(s.thrown) ?? libraryErrorIn(s.rejection)).filter((e) => e !== undefined)
  expect(typed.filter((e) => !e.retryable).map(describeError).slice(0, 5)).toEqual([])
})
