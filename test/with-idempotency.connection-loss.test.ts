import { randomUUID } from 'node:crypto'
import { sql, type Kysely } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { IdempotencyError, IdempotencyErrorCode, IdempotencyStoreError, runTransaction, withIdempotency } from '../src/index.ts'
import { connect } from '../tools/databases.ts'
import { Latch, lockWatcher } from './support/concurrency.ts'
import { useTestDatabase } from './support/test-database.ts'

// A connection lost at the claim or at the store, and a timeout at the store: typed errors a
// client can act on (retry), never a concurrent twin that is not there.
const database = useTestDatabase({ maxConnections: 10 })
let admin: pg.Client

beforeAll(async () => {
  admin = new pg.Client({ connectionString: database.url })
  await admin.connect()
})
afterAll(async () => {
  await admin?.end()
})

const backendPid = async (tx: Kysely<any>) => (await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(tx)).rows[0]!.pid

/** Ends a backend and returns once the server no longer lists it (a barrier, not a sleep). */
async function terminate(pid: number): Promise<void> {
  await admin.query('select pg_terminate_backend($1)', [pid])
  for (;;) {
    const { rows } = await admin.query<{ n: number }>('select count(*)::int as n from pg_stat_activity where pid = $1', [pid])
    if (rows[0]!.n === 0) return
    await new Promise((resolve) => setImmediate(resolve))
  }
}

async function failure(work: Promise<unknown>): Promise<unknown> {
  try {
    await work
  } catch (error) {
    return error
  }
  throw new Error('expected a failure')
}

const keyRows = async (key: string) =>
  (await sql<{ n: number }>`select count(*)::int as n from idempotency.idempotency_keys where key = ${key}`.execute(database.db)).rows[0]!.n

describe('a connection lost during a request', () => {
  it('at the claim (waiting for a twin): a retryable typed error, and the retry runs once', async () => {
    const key = randomUUID()
    const latch = new Latch()
    const first = runTransaction(database.db.transaction(), (tx) =>
      withIdempotency(tx, { scope: 'conn', key }, async () => {
        await latch.hold()
        return 'first'
      }),
    )
    await latch.entered
    // A pool of its own, so the killed connection does not come back to the shared one.
    const db = connect(database.url, 1)
    const watcher = await lockWatcher(database.url)
    try {
      let pid = 0
      const twin = failure(
        runTransaction(db.transaction(), async (tx) => {
          pid = await backendPid(tx)
          return withIdempotency(tx, { scope: 'conn', key }, async () => 'twin', { onConcurrent: 'wait', waitTimeout: '30s' })
        }),
      )
      await watcher.untilWaiting(1)
      await terminate(pid)
      const error = await twin
      expect(error).toBeInstanceOf(IdempotencyStoreError)
      expect(error).toMatchObject({ code: IdempotencyErrorCode.STORE_FAILED, retryable: true, httpStatus: 503 })
      latch.release()
      expect(await first).toMatchObject({ value: 'first', replayed: false })
      // The retry the error invites replays the twin's result.
      expect(await runTransaction(db.transaction(), (tx) => withIdempotency(tx, { scope: 'conn', key }, async () => 'again'))).toMatchObject({ value: 'first', replayed: true })
    } finally {
      latch.release()
      await watcher.close()
      await db.destroy()
    }
  })

  it.each([
    ['a plain pool', false],
    ['an optimizedDialect (the store travels with COMMIT)', true],
  ])('at the store, on %s: a retryable typed error, nothing stored, and the retry runs fn again', async (_, optimized) => {
    const key = randomUUID()
    const db = connect(database.url, 1, { optimized })
    try {
      let runs = 0
      const error = await failure(
        runTransaction(db.transaction(), (tx) =>
          withIdempotency(tx, { scope: 'conn', key }, async (tx) => {
            runs++
            // The connection dies between fn's last statement and the store.
            await terminate(await backendPid(tx))
            return 'lost'
          }),
        ),
      )
      expect(error).toBeInstanceOf(IdempotencyError)
      expect(error).toMatchObject({ code: IdempotencyErrorCode.STORE_FAILED, retryable: true, httpStatus: 503 })
      expect(await keyRows(key)).toBe(0)
      const retry = await runTransaction(db.transaction(), (tx) =>
        withIdempotency(tx, { scope: 'conn', key }, async () => {
          runs++
          return 'stored'
        }),
      )
      expect(retry).toMatchObject({ value: 'stored', replayed: false })
      expect(runs).toBe(2)
    } finally {
      await db.destroy()
    }
  })

  it("keeps the typed error when kysely's ROLLBACK fails on the dead connection (runTransaction); plain execute loses it", async () => {
    const db = connect(database.url, 1)
    try {
      const lose = (tx: Kysely<any> & { isTransaction: true }) =>
        withIdempotency(tx as never, { scope: 'conn', key: randomUUID() }, async (tx) => {
          await terminate(await backendPid(tx as never))
          return 'lost'
        })
      const plain = await failure(db.transaction().execute((tx) => lose(tx as never)))
      const kept = await failure(runTransaction(db.transaction(), (tx) => lose(tx as never)))
      // What kysely throws after its ROLLBACK fails is the driver's error, not ours.
      expect(plain).not.toBeInstanceOf(IdempotencyError)
      expect(kept).toMatchObject({ code: IdempotencyErrorCode.STORE_FAILED, retryable: true })
    } finally {
      await db.destroy()
    }
  })
})

describe('a timeout at the store', () => {
  // A statement that wrote the key's row around the claim and has not committed: the store's
  // insert waits on it until the timeout.
  for (const setting of ['statement_timeout', 'lock_timeout'] as const) {
    it(`${setting}: a retryable store failure, not a concurrent twin`, async () => {
      const key = randomUUID()
      const blocker = new pg.Client({ connectionString: database.url })
      await blocker.connect()
      try {
        await blocker.query('begin')
        await blocker.query(
          `insert into idempotency.idempotency_keys (scope, key, fingerprint, status, response, completed_at, expires_at)
           values ('conn', $1, sha256('x'), 'completed', 'null', now(), now() + interval '1 hour')`,
          [key],
        )
        const error = await failure(
          runTransaction(database.db.transaction(), (tx) =>
            withIdempotency(tx, { scope: 'conn', key }, async (tx) => {
              await sql`select set_config(${setting}, '200ms', true)`.execute(tx)
              return 'blocked'
            }),
          ),
        )
        expect(error).toBeInstanceOf(IdempotencyStoreError)
        expect(error).toMatchObject({ code: IdempotencyErrorCode.STORE_FAILED, retryable: true, httpStatus: 503 })
      } finally {
        await blocker.query('rollback')
        await blocker.end()
      }
    })
  }
})
