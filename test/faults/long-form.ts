// The fault suite's long form (`npm run test:faults`): on a PostgreSQL server of its own, the
// randomized interleaving model for FAULT_INTERLEAVINGS interleavings (10,000 by default) on a
// plain and an optimizedDialect, with the server stopped (fast, immediate) and restarted
// FAULT_RESTARTS times while requests are in flight; then the model and a 1,000-request duplicate
// race through PgBouncer in transaction pooling mode (when installed). Prints its figures; exits
// non-zero on any violation. FAULT_SEED=<n> repeats a run's requests.
import { randomInt } from 'node:crypto'
import { sql, type Kysely } from 'kysely'
import { migrate, withIdempotency } from '../../src/index.ts'
import { until } from './support/backends.ts'
import { startCuttingProxy } from './support/cutting-proxy.ts'
import { createEffects, writeEffect } from './support/effects.ts'
import { startFaultServer } from './support/fault-server.ts'
import { formatReport, runModel, type ModelReport } from './support/interleaving-model.ts'
import { invariantViolations } from './support/invariants.ts'
import { findPgBouncer, startPgBouncer } from './support/pgbouncer.ts'
import { connect, createDatabase, withDatabase } from '../../tools/databases.ts'

const interleavings = Number(process.env.FAULT_INTERLEAVINGS ?? 10_000)
const restarts = Number(process.env.FAULT_RESTARTS ?? 4)
const seed = Number(process.env.FAULT_SEED ?? randomInt(2 ** 31))
const shape = { workers: 4, keys: 2, requestsPerWorker: 3 }
const started = Date.now()
const failures: string[] = []

console.log(`fault suite, long form: seed ${seed} (FAULT_SEED=${seed} repeats these requests), ${interleavings} interleavings, ${restarts} restarts`)
const server = await startFaultServer()
try {
  await createDatabase(server.url, 'faults')
  const url = withDatabase(server.url, 'faults')
  const admin = connect(url, 8)
  await migrate(admin)
  await createEffects(admin)
  // Requests go through a proxy that can drop a COMMIT's reply; kills and checks go direct.
  const proxy = await startCuttingProxy(url)
  const pools = { plain: connect(proxy.url, 4), optimized: connect(proxy.url, 4, { optimized: true }) }

  // Restarts spread evenly over the run, alternating fast and immediate, each while at least
  // one request's transaction is open on the server.
  const restartAt = new Set(Array.from({ length: restarts }, (_, n) => Math.floor(((n + 1) * interleavings) / (restarts + 1))))
  const restartLog: string[] = []
  const report = await runModel({
    seed,
    interleavings,
    ...shape,
    pools,
    admin,
    cutCommitReply: () => void proxy.cutNextCommitReply(),
    during: async (i, inFlight) => {
      if (!restartAt.has(i)) return
      const mode = restartLog.length % 2 === 0 ? 'fast' : 'immediate'
      const open = await until('an open transaction, or no request left', async () => {
        const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
          where datname = current_database() and pid <> pg_backend_pid() and xact_start is not null`.execute(admin)
        return rows[0]!.n > 0 || inFlight() === 0 ? rows[0]!.n : undefined
      })
      const stopping = Date.now()
      await server.stop(mode)
      await server.start()
      restartLog.push(`${mode} at interleaving ${i} (${open} open transactions, down ${Date.now() - stopping} ms)`)
    },
    progress: (done) => {
      if (done % 1000 === 0) console.log(`  ${done} interleavings, ${((Date.now() - started) / 1000).toFixed(0)} s`)
    },
  })
  console.log(`\n== the model on a plain and an optimizedDialect, direct\n${formatReport(report)}\n  restarts: ${restartLog.join('; ') || 'none'}`)
  collect('direct', report)
  await Promise.all(Object.values(pools).map((db) => db.destroy()))
  await proxy.close()

  const found = await findPgBouncer()
  if (!found) console.log('\n== pgbouncer is not installed (apt-get install -y pgbouncer): the PgBouncer part is skipped')
  else {
    const bouncer = await startPgBouncer(url, { poolSize: 60 })
    const plain = connect(bouncer.url, 50)
    try {
      const through = await runModel({ seed: seed + 1, interleavings: Math.max(1, Math.floor(interleavings / 10)), ...shape, pools: { pgbouncer: plain }, admin })
      console.log(`\n== the model through ${bouncer.version}, transaction pooling, plain pool\n${formatReport(through)}`)
      collect('pgbouncer', through)
      console.log(`\n== 1,000 concurrent duplicates of one key through ${bouncer.version}, 50 connections`)
      console.log(`  ${await duplicates(plain, admin, 1000)}`)
    } finally {
      await plain.destroy()
      await bouncer.close()
    }
  }
  await admin.destroy()
} finally {
  await server.destroy()
}

const typing = failures.filter((f) => f.includes('(error typing)')).length
console.log(
  `\nfault suite, long form: ${failures.length - typing} violations of at-most-once, all-or-nothing or replay; ${typing} of error typing; ${((Date.now() - started) / 1000).toFixed(0)} s`,
)
for (const failure of failures.slice(0, 20)) console.log(`  ${failure}`)
// Explicitly, with the run's own code: the pools and servers it leaves behind need not be waited for.
process.exit(failures.length === 0 ? 0 : 1)

function collect(where: string, report: ModelReport): void {
  failures.push(...report.violations.map((v) => `${where}: ${v}`))
  failures.push(...report.errorViolations.map((v) => `${where} (error typing): ${v}`))
}

/** `count` requests with one key at once: fn must run once, everyone else replays its value. */
async function duplicates(db: Kysely<any>, admin: Kysely<any>, count: number): Promise<string> {
  const key = `duplicates-${seed}`
  let runs = 0
  const results = await Promise.allSettled(
    Array.from({ length: count }, () =>
      db.transaction().execute((tx) =>
        withIdempotency(tx, { scope: 'faults:duplicates', key, request: { key } }, (tx) => (runs++, writeEffect(tx, key)), { waitTimeout: '60s' }),
      ),
    ),
  )
  const outcomes = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []))
  const first = outcomes.find((o) => !o.replayed)
  const differing = outcomes.filter((o) => JSON.stringify(o.value) !== JSON.stringify(first?.value)).length
  const violations = await invariantViolations(admin, [key], 'faults:duplicates')
  if (runs !== 1 || differing > 0) violations.push(`fn ran ${runs} times, ${differing} outcomes differ`)
  failures.push(...violations.map((v) => `duplicates: ${v}`))
  return `${outcomes.length} answered (${outcomes.filter((o) => o.replayed).length} replays), ${results.length - outcomes.length} failed, fn ran ${runs} time(s), ${violations.length} violations`
}
