// statement_timeout, lock_timeout and idle_in_transaction_session_timeout firing at the claim, in
// fn and at the store, on a plain and an optimizedDialect. Each wait is on a lock the test holds
// (the key, the key table, the commit gate), and each idle session is watched until the server
// ends it: no sleeps. After each: nothing of fn's committed without its key, a retry runs fn once,
// and the error says what happened, typed where it is the library's.
import { randomUUID } from 'node:crypto'
import { sql, type Kysely, type Transaction } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { IdempotencyError, IdempotencyErrorCode, withIdempotency } from '../../src/index.ts'
import { connect } from '../../tools/databases.ts'
import { useTestDatabase } from '../support/test-database.ts'
import { backendPid, untilGone } from './support/backends.ts'
import { createEffects, writeEffect } from './support/effects.ts'
import { holdCommitGate, holdKey, holdKeyTable, passCommitGate, type Held } from './support/holds.ts'
import { invariantViolations, keyStates } from './support/invariants.ts'
import { runTransaction } from './support/transaction-runner.ts'
import { isStableCode, libraryErrorIn } from './support/typed-errors.ts'

const SCOPE = 'faults:timeouts'
const database = useTestDatabase({ maxConnections: 6 })
const pools = {} as Record<'plain' | 'optimized', Kysely<any>>

beforeAll(async () => {
  await createEffects(database.db)
  pools.plain = connect(database.url, 3)
  pools.optimized = connect(database.url, 3, { optimized: true })
})
afterAll(async () => {
  await Promise.all(Object.values(pools).map((db) => db.destroy()))
})

type Expected =
  | 'key in progress' // the claim waited on a twin: IDEMPOTENCY_KEY_IN_PROGRESS, retryable
  | "fn's error" // fn's own statement failed: withIdempotency rethrows it unchanged
  | 'typed store failure' // the store failed: typed, retryable, and not reported as a twin
  | 'lost connection' // the server ended the session: typed and retryable where the library met it

interface TimeoutCase {
  /** Set first in the caller's transaction (or, for `idle: 'in fn'`, by fn). */
  setting: string
  hold?: 'key' | 'key table'
  /** fn, after its write, waits on the commit gate the test holds: the timeout ends that wait. */
  fnWaits?: boolean
  /** Where the transaction sits idle until the server ends its session. */
  idle?: 'before the claim' | 'in fn after its writes' | 'before COMMIT'
  options?: { waitTimeout?: string }
  expected: Expected
}

const CASES: Record<string, TimeoutCase> = {
  'statement_timeout at the claim': { setting: "statement_timeout = '300ms'", hold: 'key', options: { waitTimeout: '30s' }, expected: 'key in progress' },
  'lock_timeout at the claim (waitTimeout)': { setting: "lock_timeout = '30s'", hold: 'key', options: { waitTimeout: '100ms' }, expected: 'key in progress' },
  'statement_timeout in fn': { setting: "statement_timeout = '300ms'", fnWaits: true, expected: "fn's error" },
  'lock_timeout in fn': { setting: "lock_timeout = '100ms'", fnWaits: true, expected: "fn's error" },
  'statement_timeout at the store': { setting: "statement_timeout = '300ms'", hold: 'key table', expected: 'typed store failure' },
  'lock_timeout at the store': { setting: "lock_timeout = '100ms'", hold: 'key table', expected: 'typed store failure' },
  'idle_in_transaction_session_timeout before the claim': { setting: "idle_in_transaction_session_timeout = '300ms'", idle: 'before the claim', expected: 'lost connection' },
  'idle_in_transaction_session_timeout in fn after its writes': { setting: "idle_in_transaction_session_timeout = '300ms'", idle: 'in fn after its writes', expected: 'lost connection' },
  'idle_in_transaction_session_timeout before COMMIT': { setting: "idle_in_transaction_session_timeout = '300ms'", idle: 'before COMMIT', expected: 'lost connection' },
}

async function timedOut(db: Kysely<any>, c: TimeoutCase, key: string, savepoint: boolean) {
  const admin = database.db
  let held: Held | undefined
  if (c.hold === 'key') held = await holdKey(admin, SCOPE, key)
  if (c.hold === 'key table') held = await holdKeyTable(admin)
  const gate = c.fnWaits ? await holdCommitGate(admin) : undefined
  const setLocal = (tx: Transaction<any>) => sql.raw(`set local ${c.setting}`).execute(tx)
  let thrown: unknown
  let fnError: unknown
  let pid = 0
  const rejection = await runTransaction(db.transaction(), async (tx) => {
    if (c.idle !== 'in fn after its writes') await setLocal(tx)
    if (c.idle === 'before the claim') await untilGone(admin, await backendPid(tx))
    try {
      await withIdempotency(
        tx,
        { scope: SCOPE, key, request: { key } },
        async (tx) => {
          try {
            if (c.idle === 'in fn after its writes') await setLocal(tx)
            pid = await backendPid(tx)
            const value = await writeEffect(tx, key)
            if (c.fnWaits) await passCommitGate(tx)
            if (c.idle === 'in fn after its writes') await untilGone(admin, pid)
            return value
          } catch (error) {
            fnError = error
            throw error
          }
        },
        { savepoint, ...c.options },
      )
    } catch (error) {
      thrown = error
      throw error
    }
    if (c.idle === 'before COMMIT') await untilGone(admin, pid)
  }).then(
    () => undefined,
    (error: unknown) => error ?? new Error('rejected with nothing'),
  )
  await held?.release()
  await gate?.release()
  return { rejection, thrown, fnError }
}

type Seen = Awaited<ReturnType<typeof timedOut>>
const seenIn = new Map<string, Seen>()
const MATRIX = (['plain', 'optimized'] as const).flatMap((pool) => [false, true].flatMap((savepoint) => Object.keys(CASES).map((name) => ({ pool, savepoint, name }))))

describe('all or nothing', () => {
  it.for(MATRIX)('$pool pool, savepoint $savepoint, $name: nothing committed, a retry runs fn once', async ({ pool, savepoint, name }) => {
    const db = pools[pool]
    const key = randomUUID()
    const seen = await timedOut(db, CASES[name]!, key, savepoint)
    seenIn.set(`${pool} ${savepoint} ${name}`, seen)
    expect(seen.rejection, 'the request must fail').toBeDefined()
    expect((await keyStates(database.db, [key]))[0]).toMatchObject({ runs: [], status: null })

    let runs = 0
    const retry = await db.transaction().execute((tx) =>
      withIdempotency(tx, { scope: SCOPE, key, request: { key } }, (tx) => (runs++, writeEffect(tx, key)), { savepoint }),
    )
    expect({ replayed: retry.replayed, runs }).toEqual({ replayed: false, runs: 1 })
    expect(await invariantViolations(database.db, [key], SCOPE)).toEqual([])
  })
})

describe('the error says what happened', () => {
  it.for(MATRIX)('$pool pool, savepoint $savepoint, $name', ({ pool, savepoint, name }) => {
    const c = CASES[name]!
    const seen = seenIn.get(`${pool} ${savepoint} ${name}`)
    expect(seen, 'the fault ran').toBeDefined()
    const { rejection, thrown, fnError } = seen!
    for (const error of [thrown, rejection]) {
      const typed = libraryErrorIn(error)
      if (typed) expect(isStableCode(typed.code), typed.code).toBe(true)
    }
    switch (c.expected) {
      case 'key in progress':
        expect(thrown).toMatchObject({ code: IdempotencyErrorCode.KEY_IN_PROGRESS, retryable: true })
        break
      case "fn's error":
        expect(thrown).toBe(fnError)
        break
      case 'typed store failure': {
        // On an optimizedDialect without a savepoint the store travels with COMMIT, which
        // rejects with the same typed error.
        const typed = libraryErrorIn(pool === 'optimized' && !savepoint ? rejection : thrown)
        expect(typed, 'a typed error').toBeInstanceOf(IdempotencyError)
        expect(typed!.code, 'a timeout at the store is not a concurrent twin').not.toBe(IdempotencyErrorCode.KEY_IN_PROGRESS)
        expect(typed!.retryable).toBe(true)
        break
      }
      case 'lost connection': {
        const typed = libraryErrorIn(thrown) ?? libraryErrorIn(rejection)
        if (typed) expect(typed.retryable, typed.message).toBe(true)
        const metByLibrary = c.idle === 'before the claim' || (c.idle === 'in fn after its writes' && (pool === 'plain' || savepoint))
        if (metByLibrary) {
          expect(thrown, 'withIdempotency raises a typed error').toBeInstanceOf(IdempotencyError)
          expect(libraryErrorIn(rejection), "the typed error is reachable from the transaction's rejection (cause)").toBeDefined()
        }
        break
      }
    }
  })
})
