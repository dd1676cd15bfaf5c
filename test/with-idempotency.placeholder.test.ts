import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { beforeAll, describe, expect, it } from 'vitest'
import { withIdempotency } from '../src/index.ts'
import { countEntries, createLedger, insertEntry, type LedgerDatabase } from './support/ledger.ts'
import { useTestDatabase } from './support/test-database.ts'

// Under REPEATABLE READ the claim writes a `claimed` placeholder before fn runs. With
// `savepoint: true`, fn's error rolls back to a savepoint taken after the placeholder, so a
// caller that catches the error and commits commits the placeholder alone. A retry must treat
// it as absent and run fn anew, never replay it. A placeholder is written already expired
// (expires_at = now()), so its status is what keeps it out of replays once the database clock
// steps back (NTP, a failover to a server whose clock is behind): the second case moves the
// placeholder an hour ahead, as such a step would.
const database = useTestDatabase<LedgerDatabase>()

beforeAll(async () => {
  await createLedger(database.db)
})

describe('a committed claimed placeholder', () => {
  it.each([
    ['as written', 0],
    ['after the database clock stepped back an hour', 3_600],
  ])('is not replayed (%s): the retry runs fn anew and stores its result', async (_label, stepBackSeconds) => {
    const account = randomUUID()
    const key = randomUUID()
    let runs = 0
    const attempt = (fail: boolean) =>
      database.db
        .transaction()
        .setIsolationLevel('repeatable read')
        .execute(async (tx) => {
          const outcome = await withIdempotency(
            tx,
            { scope: 'placeholder', key, request: { account } },
            async (tx) => {
              runs++
              const row = await insertEntry(tx, account, 5)
              if (fail) throw new Error('handled by the caller')
              return { entry: row.id }
            },
            { savepoint: true },
          ).catch((error: Error) => error)
          // The caller swallows fn's error and commits its transaction anyway.
          return outcome
        })

    const failed = await attempt(true)
    expect(failed).toBeInstanceOf(Error)
    const { rows } = await sql<{ status: string }>`
      select status from idempotency.idempotency_keys where scope = 'placeholder' and key = ${key}`.execute(database.db)
    expect(rows).toEqual([{ status: 'claimed' }])
    await sql`
      update idempotency.idempotency_keys
         set created_at = created_at + make_interval(secs => ${stepBackSeconds}), expires_at = expires_at + make_interval(secs => ${stepBackSeconds})
       where scope = 'placeholder' and key = ${key}`.execute(database.db)

    const retry = await attempt(false)
    expect(runs).toBe(2)
    expect(retry).toMatchObject({ replayed: false, value: { entry: expect.any(String) } })
    expect(await countEntries(database.db, account)).toBe(1)

    const replay = await attempt(false)
    expect(runs).toBe(2)
    expect(replay).toMatchObject({ replayed: true, value: (retry as { value: unknown }).value })
  })
})
