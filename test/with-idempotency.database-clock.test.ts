import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { withIdempotency } from '../src/index.ts'
import { createLedger, insertEntry, type LedgerDatabase } from './support/ledger.ts'
import { useTestDatabase } from './support/test-database.ts'

// Expiry follows the database clock, never the application's: an app server whose clock is
// days off must neither store keys that are already expired nor keys that complete in the future.
// Only the application's Date is skewed (timers stay real, so the driver and the pool behave).
const database = useTestDatabase<LedgerDatabase>()
const DAY_MS = 86_400_000

beforeAll(async () => {
  await createLedger(database.db)
})
afterEach(() => {
  vi.useRealTimers()
})

function skewApplicationClock(offsetMs: number): void {
  const now = Date.now()
  vi.useFakeTimers({ toFake: ['Date'] })
  vi.setSystemTime(now + offsetMs)
}

function deposit(key: string, counter: { runs: number }) {
  return database.db.transaction().execute((tx) =>
    withIdempotency(tx, { scope: 'clock', key, request: { amount: 1 } }, async (tx) => {
      counter.runs++
      return (await insertEntry(tx, key, 1)).id
    }, { ttl: '24h' }),
  )
}

/** The stored row against the database's own now(), all compared by the database. */
async function storedAgainstDatabaseClock(key: string) {
  const { rows } = await sql<{ completed_not_in_future: boolean; live: boolean; ttl_seconds: number }>`
    select completed_at <= now() as completed_not_in_future,
           expires_at > now() as live,
           extract(epoch from expires_at - completed_at)::int as ttl_seconds
      from idempotency.idempotency_keys where scope = 'clock' and key = ${key}`.execute(database.db)
  return rows[0]
}

describe('expiry follows the database clock', () => {
  it.each([
    ['two days behind', -2 * DAY_MS],
    ['two days ahead', 2 * DAY_MS],
  ])('with the application clock %s, a key completes now and replays for its ttl', async (_label, offsetMs) => {
    skewApplicationClock(offsetMs)
    const key = randomUUID()
    const counter = { runs: 0 }
    const first = await deposit(key, counter)
    const again = await deposit(key, counter)
    expect(counter.runs).toBe(1)
    expect(again.replayed).toBe(true)
    expect(again.value).toBe(first.value)
    expect(await storedAgainstDatabaseClock(key)).toEqual({ completed_not_in_future: true, live: true, ttl_seconds: 86_400 })
  })
})
