// PgBouncer in transaction pooling mode in front of the test server: the at-most-once race (50
// racers on one key), replays, a killed server connection and a short run of the interleaving
// model, all on a plain pool; and what optimizedDialect meets there (its prepared statements live on
// one server connection, the next transaction may get another).
import { randomUUID } from 'node:crypto'
import type { Kysely } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { IdempotencyErrorCode, withIdempotency } from '../../src/index.ts'
import { connect } from '../../tools/databases.ts'
import { barrier } from '../support/concurrency.ts'
import { useTestDatabase } from '../support/test-database.ts'
import { backendPid, terminate, untilWaiting } from './support/backends.ts'
import { createEffects, writeEffect } from './support/effects.ts'
import { formatReport, runModel } from './support/interleaving-model.ts'
import { invariantViolations, keyStates } from './support/invariants.ts'
import { findPgBouncer, startPgBouncer, type PgBouncer } from './support/pgbouncer.ts'
import { describeError, libraryErrorIn } from './support/typed-errors.ts'

const SCOPE = 'faults:pgbouncer'
const RACERS = 50
const installed = await findPgBouncer()
if (!installed) console.log('pgbouncer is not installed (apt-get install -y pgbouncer): the PgBouncer fault tests are skipped.')

describe.skipIf(!installed)(`PgBouncer in transaction pooling mode (${installed?.version})`, () => {
  const database = useTestDatabase({ maxConnections: 8 })
  let bouncer: PgBouncer
  let plain: Kysely<any>

  beforeAll(async () => {
    await createEffects(database.db)
    bouncer = await startPgBouncer(database.url, { poolSize: RACERS + 10 })
    plain = connect(bouncer.url, RACERS + 1)
  })
  afterAll(async () => {
    await plain?.destroy()
    await bouncer?.close()
  })

  const call = (db: Kysely<any>, key: string, fn = writeEffect) =>
    db.transaction().execute((tx) => withIdempotency(tx, { scope: SCOPE, key, request: { key } }, (tx) => fn(tx, key)))

  it('runs fn once for fifty racers on one key; the other forty-nine replay its value, later calls too', async () => {
    const key = randomUUID()
    const start = barrier(RACERS)
    let runs = 0
    const racers = Array.from({ length: RACERS }, () =>
      plain.transaction().execute(async (tx) => {
        await start.arrive()
        return withIdempotency(tx, { scope: SCOPE, key, request: { key } }, async (tx) => {
          runs++
          const value = await writeEffect(tx, key)
          // Hold the key until every other racer is queued on its lock, on the server.
          await untilWaiting(database.db, 'advisory', RACERS - 1)
          return value
        })
      }),
    )
    const outcomes = await Promise.all(racers)
    expect(runs).toBe(1)
    const first = outcomes.find((o) => !o.replayed)!
    expect(outcomes.filter((o) => o.replayed)).toHaveLength(RACERS - 1)
    for (const o of outcomes) expect(JSON.stringify(o.value)).toBe(JSON.stringify(first.value))
    const [state] = await keyStates(database.db, [key])
    expect(state).toMatchObject({ runs: [first.value.run], status: 'completed', response: JSON.stringify(first.value) })

    const later = await call(plain, key, () => Promise.reject(new Error('fn must not run on a replay')))
    expect(later).toMatchObject({ replayed: true, value: first.value })
    const mismatch = plain.transaction().execute((tx) => withIdempotency(tx, { scope: SCOPE, key, request: { other: true } }, () => null))
    await expect(mismatch).rejects.toMatchObject({ code: IdempotencyErrorCode.KEY_MISMATCH })
    expect(await invariantViolations(database.db, [key], SCOPE)).toEqual([])
  })

  it('keeps nothing when the server connection dies in fn, and a retry runs fn once', async () => {
    const key = randomUUID()
    const attempt = call(plain, key, async (tx, key) => {
      const value = await writeEffect(tx, key)
      await terminate(database.db, await backendPid(tx))
      return value
    })
    await expect(attempt).rejects.toBeDefined()
    expect((await keyStates(database.db, [key]))[0]).toMatchObject({ runs: [], status: null })
    expect(await call(plain, key)).toMatchObject({ replayed: false })
    expect(await invariantViolations(database.db, [key], SCOPE)).toEqual([])
  })

  it('holds every invariant through a short run of the interleaving model', async () => {
    const seed = Number(process.env.FAULT_SEED ?? Math.floor(Math.random() * 2 ** 31))
    const report = await runModel({ seed, interleavings: 6, workers: 6, keys: 3, requestsPerWorker: 4, pools: { pgbouncer: plain }, admin: database.db })
    console.log(`through ${bouncer.version}: ${formatReport(report)}`)
    expect(report.violations).toEqual([])
  })

  it('with optimizedDialect: the prepared statements meet other server connections; invariants hold, every failure is typed and retryable', async () => {
    // Its connections' transactions land on server connections that a plain pool's transactions
    // keep in use too: sooner or later one that never parsed the library's statements.
    const optimized = connect(bouncer.url, 10, { optimized: true })
    const keys = Array.from({ length: 200 }, () => randomUUID())
    const failures: unknown[] = []
    try {
      await Promise.all([
        ...keys.map((key) =>
          call(optimized, key).catch((error: unknown) => {
            failures.push(error)
          }),
        ),
        ...Array.from({ length: 200 }, () => call(plain, randomUUID())),
      ])
    } finally {
      await optimized.destroy()
    }
    const typed = failures.map(libraryErrorIn)
    console.log(
      `optimizedDialect through ${bouncer.version}: ${keys.length - failures.length} of ${keys.length} first calls committed; failures: ${[...new Set(failures.map((f) => describeError(libraryErrorIn(f) ?? f)))].join(' | ') || 'none'}`,
    )
    expect(await invariantViolations(database.db, keys, SCOPE)).toEqual([])
    for (const error of typed) expect(error, 'a typed error').toMatchObject({ retryable: true })
    // And a retry of each failed key goes through on a plain pool.
    for (const key of keys) await call(plain, key)
    expect(await invariantViolations(database.db, keys, SCOPE)).toEqual([])
  })
})
