import { randomUUID } from 'node:crypto'
import { sql, type IsolationLevel } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { IdempotencyError, IdempotencyErrorCode, withIdempotency, type IdempotencyOutcome, type WithIdempotencyOptions } from '../src/index.ts'
import { barrier, Latch, lockWatcher } from './support/concurrency.ts'
import { countEntries, countKeys, createLedger, insertEntry, type LedgerDatabase } from './support/ledger.ts'
import { useTestDatabase } from './support/test-database.ts'

// Fifty transactions on fifty real connections, plus the lock watcher's own.
const RACERS = 50
const database = useTestDatabase<LedgerDatabase>({ maxConnections: RACERS + 1 })
let watcher: Awaited<ReturnType<typeof lockWatcher>>

beforeAll(async () => {
  await createLedger(database.db)
  watcher = await lockWatcher(database.url)
})
afterAll(async () => {
  await watcher?.close()
})

type Result = { outcome: IdempotencyOutcome<{ run: number }> } | { error: unknown }

interface Race {
  isolation: IsolationLevel
  options?: WithIdempotencyOptions<LedgerDatabase>
  /**
   * Runs inside fn after its write, before commit: holds the key while the others pile up.
   * `failures()` counts the transactions that have already failed.
   */
  whileHolding?: (run: number, failures: () => number) => Promise<void>
  /** Throw from fn on these runs (1-based), to roll the holder back. */
  failOnRun?: number
}

/**
 * Starts RACERS transactions that all take their snapshot first, meet at a barrier, and only
 * then claim the same key: the worst case for every isolation level.
 */
async function race({ isolation, options = {}, whileHolding, failOnRun }: Race) {
  const account = randomUUID()
  const key = randomUUID()
  const start = barrier(RACERS)
  let runs = 0
  let failures = 0
  const attempt = (): Promise<Result> =>
    database.db
      .transaction()
      .setIsolationLevel(isolation)
      .execute(async (tx) => {
        await sql`select 1`.execute(tx) // the snapshot of REPEATABLE READ and SERIALIZABLE is taken here
        await start.arrive()
        return withIdempotency(
          tx,
          { scope: 'race', key, request: { account } },
          async (tx) => {
            const run = ++runs
            await insertEntry(tx, account, 100)
            await whileHolding?.(run, () => failures)
            if (run === failOnRun) throw new Error(`run ${run} rolls back`)
            return { run }
          },
          options,
        )
      })
      .then(
        (outcome) => ({ outcome }),
        (error: unknown) => {
          failures++
          return { error }
        },
      )
  const results = await Promise.all(Array.from({ length: RACERS }, attempt))
  return { account, key, results, runs: () => runs }
}

/** A first call on `key` that holds the key until the latch is released, then returns 'first'. */
function holdKey(key: string, latch: Latch) {
  return database.db.transaction().execute((tx) =>
    withIdempotency(tx, key, async () => {
      await latch.hold()
      return 'first'
    }),
  )
}

const errorsOf = (results: Result[]) => results.flatMap((r) => ('error' in r ? [r.error] : []))
const outcomesOf = (results: Result[]) => results.flatMap((r) => ('outcome' in r ? [r.outcome] : []))

describe.each<IsolationLevel>(['read committed', 'repeatable read', 'serializable'])('%s: fifty transactions, one key', (isolation) => {
  it("runs fn exactly once with onConcurrent: 'wait'; every other transaction replays or gets a typed retryable error", async () => {
    const { account, key, results, runs } = await race({
      isolation,
      // Hold the key until all the others are queued on its lock.
      whileHolding: () => watcher.untilWaiting(RACERS - 1),
    })
    expect(runs()).toBe(1)
    expect(await countEntries(database.db, account)).toBe(1)
    expect(await countKeys(database.db, key)).toBe(1)

    const outcomes = outcomesOf(results)
    expect(outcomes.filter((o) => !o.replayed)).toHaveLength(1)
    for (const o of outcomes.filter((o) => o.replayed)) expect(o.value).toEqual({ run: 1 })
    const errors = errorsOf(results)
    for (const error of errors) {
      expect(error).toBeInstanceOf(IdempotencyError)
      expect(error).toMatchObject({ code: IdempotencyErrorCode.SNAPSHOT_CONFLICT, retryable: true, httpStatus: 409 })
    }
    if (isolation === 'read committed') {
      expect(errors).toHaveLength(0)
    } else {
      // Every loser's snapshot predates the winner's commit: none can see it, none may run fn.
      expect(errors).toHaveLength(RACERS - 1)
      // Retrying the transaction, as the error says, gives the replay.
      const retry = await database.db
        .transaction()
        .setIsolationLevel(isolation)
        .execute((tx) => withIdempotency(tx, { scope: 'race', key, request: { account } }, async () => ({ run: -1 })))
      expect(retry).toMatchObject({ replayed: true, value: { run: 1 } })
    }
  })

  it('lets one waiter run fn when the first transaction rolls back', async () => {
    const { account, key, results, runs } = await race({
      isolation,
      whileHolding: async (run) => {
        if (run === 1) await watcher.untilWaiting(RACERS - 1)
      },
      failOnRun: 1,
    })
    expect(await countEntries(database.db, account)).toBe(1)
    expect(await countKeys(database.db, key)).toBe(1)
    // The first run and the one waiter that took over; never a third.
    expect(runs()).toBe(2)
    const outcomes = outcomesOf(results)
    expect(outcomes.filter((o) => !o.replayed)).toEqual([expect.objectContaining({ value: { run: 2 } })])
    const errors = errorsOf(results)
    expect(errors.filter((e) => !(e instanceof IdempotencyError))).toEqual([new Error('run 1 rolls back')])
    for (const error of errors.filter((e) => e instanceof IdempotencyError)) {
      expect(error).toMatchObject({ code: IdempotencyErrorCode.SNAPSHOT_CONFLICT })
    }
    if (isolation === 'read committed') expect(errors).toHaveLength(1)
  })

  it("fails fast with IDEMPOTENCY_KEY_IN_PROGRESS under onConcurrent: 'reject'", async () => {
    const { account, results, runs } = await race({
      isolation,
      options: { onConcurrent: 'reject', retryAfterSeconds: 2 },
      // Hold the key until every other transaction has been turned away.
      whileHolding: async (_run, failures) => {
        const deadline = Date.now() + 30_000
        while (failures() < RACERS - 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5))
      },
    })
    expect(runs()).toBe(1)
    expect(await countEntries(database.db, account)).toBe(1)
    const errors = errorsOf(results)
    expect(errors).toHaveLength(RACERS - 1)
    for (const error of errors) expect(error).toMatchObject({ code: IdempotencyErrorCode.KEY_IN_PROGRESS, httpStatus: 409, retryAfterSeconds: 2 })
  })
})

it('bounds the wait: a waiter gives up with IDEMPOTENCY_KEY_IN_PROGRESS after waitTimeout', async () => {
  const key = randomUUID()
  const latch = new Latch()
  const holder = holdKey(key, latch)
  await latch.entered
  const waiter = database.db.transaction().execute((tx) => withIdempotency(tx, key, async () => 'second', { waitTimeout: '100ms' }))
  await expect(waiter).rejects.toMatchObject({ code: IdempotencyErrorCode.KEY_IN_PROGRESS, retryable: true })
  latch.release()
  await expect(holder).resolves.toMatchObject({ value: 'first', replayed: false })
  const later = await database.db.transaction().execute((tx) => withIdempotency(tx, key, async () => 'third'))
  expect(later).toMatchObject({ value: 'first', replayed: true })
})

it('releases the key when the holding connection dies halfway: nothing is kept, a waiter runs fn', async () => {
  const account = randomUUID()
  const key = randomUUID()
  let runs = 0
  const attempt = () =>
    database.db.transaction().execute((tx) =>
      withIdempotency(tx, { key, request: { account } }, async (tx) => {
        const run = ++runs
        await insertEntry(tx, account, 100)
        if (run === 1) {
          // Kill this very backend from outside, as a crash or a network cut would, once a
          // second request is queued behind the key.
          await watcher.untilWaiting(1)
          const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(tx)
          await sql`select pg_terminate_backend(${rows[0]!.pid})`.execute(database.db)
          await sql`select 1`.execute(tx)
        }
        return { run }
      }),
    )
  const settled = await Promise.allSettled([attempt(), attempt()])
  // Whichever claimed first died with its connection; the other ran fn itself.
  expect(settled.filter((s) => s.status === 'rejected')).toHaveLength(1)
  expect(settled.find((s) => s.status === 'fulfilled')).toMatchObject({ value: { replayed: false, value: { run: 2 } } })
  expect(await countEntries(database.db, account)).toBe(1)
  expect(await countKeys(database.db, key)).toBe(1)
})

describe('every wait is bounded', () => {
  it('fails fast in reject mode even when an expired row is locked by a sweep', async () => {
    const key = randomUUID()
    await database.db.transaction().execute((tx) => withIdempotency(tx, key, async () => 'old'))
    await sql`update idempotency.idempotency_keys set expires_at = now() - interval '1 second' where key = ${key}`.execute(database.db)
    // A sweep's batch holds the expired row.
    const latch = new Latch()
    const sweep = database.db.transaction().execute(async (tx) => {
      await sql`select 1 from idempotency.idempotency_keys where key = ${key} for update`.execute(tx)
      await latch.hold()
    })
    await latch.entered
    const attempt = database.db.transaction().execute((tx) =>
      withIdempotency(tx, key, async () => 'new', { onConcurrent: 'reject', waitTimeout: '200ms' }),
    )
    await expect(attempt).rejects.toMatchObject({ code: IdempotencyErrorCode.KEY_IN_PROGRESS })
    latch.release()
    await sweep
  })

  it("turns the caller's statement_timeout during a wait into IDEMPOTENCY_KEY_IN_PROGRESS", async () => {
    const key = randomUUID()
    const latch = new Latch()
    const holder = holdKey(key, latch)
    await latch.entered
    const waiter = database.db.transaction().execute(async (tx) => {
      await sql`set local statement_timeout = '150ms'`.execute(tx)
      return withIdempotency(tx, key, async () => 'second', { waitTimeout: '30s' })
    })
    await expect(waiter).rejects.toMatchObject({ code: IdempotencyErrorCode.KEY_IN_PROGRESS, retryable: true })
    latch.release()
    await expect(holder).resolves.toMatchObject({ value: 'first' })
  })
})

it('replaces an expired key under REPEATABLE READ even when the sweep deleted it after the snapshot', async () => {
  const key = randomUUID()
  await database.db.transaction().execute((tx) => withIdempotency(tx, key, async () => 'old'))
  await sql`update idempotency.idempotency_keys set expires_at = now() - interval '1 second' where key = ${key}`.execute(database.db)
  const outcome = await database.db
    .transaction()
    .setIsolationLevel('repeatable read')
    .execute(async (tx) => {
      await sql`select 1`.execute(tx) // the snapshot still holds the expired row ...
      await sql`delete from idempotency.idempotency_keys where key = ${key}`.execute(database.db) // ... which the sweep now deletes
      return withIdempotency(tx, key, async () => 'new')
    })
  expect(outcome).toMatchObject({ replayed: false, value: 'new' })
})
