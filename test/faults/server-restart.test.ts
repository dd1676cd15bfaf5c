// A server restarted under load: a PostgreSQL of the suite's own (never the machine's) is
// stopped in fast and in immediate mode while clients drive withIdempotency on a plain and an
// optimizePool pool, with transactions open, then started again. Afterwards every key ran at
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
import { describeError, libraryErrorIn } from './support/typed-errors.ts'

const WORKERS = 8
let server: FaultServer
let admin: Kysely<any>
const pools: Record<string, Kysely<any>> = {}

beforeAll(async () => {
  server = await startFaultServer()
  await createDatabase(server.url, 'faults')
  const url = withDatabase(server.url, 'faults')
  admin = connect(url, 4)
  await migrate(admin)
  await createEffects(admin)
  pools.plain = connect(url, WORKERS / 2)
  pools.optimized = connect(url, WORKERS / 2, { optimized: true })
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
  console.log(`${mode} restart: ${seen.length} requests, ${committedFirstRuns} committed first runs, ${seen.filter((s) => !s.committed).length} failed, ${storedKeys} keys stored`)
  // Every key stored by a known commit, or by a COMMIT whose answer the stop swallowed.
  expect(storedKeys).toBeGreaterThanOrEqual(committedFirstRuns)
  expect(storedKeys - committedFirstRuns).toBeLessThanOrEqual(seen.filter((s) => s.unknownOutcome && s.outcome?.replayed === false).length)
  // What the library raised while the server went away says "retry" (item 11 of issue 12).
  const notRetryable = seen.map((s) => libraryErrorIn(s.thrown) ?? libraryErrorIn(s.rejection)).filter((e) => e !== undefined && !e.retryable)
  expect(notRetryable.map(describeError).slice(0, 5)).toEqual([])
})
