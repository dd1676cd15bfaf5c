// What a pool's settings or a handler's savepoints must not change, on a plain node-postgres pool
// and through optimizedDialect alike: a pool that reads results in binary format replays what it
// stored, and fn's writes never commit without their key, whatever savepoints fn leaves behind.
import { randomUUID } from 'node:crypto'
import { createRequire } from 'node:module'
import { Kysely, PostgresDialect, sql, type Transaction } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FinalFailure, IdempotencyErrorCode, optimizedDialect, withIdempotency } from '../src/index.ts'
import { countEntries, countKeys, createLedger, insertEntry, type LedgerDatabase } from './support/ledger.ts'
import { useTestDatabase } from './support/test-database.ts'

const database = useTestDatabase<LedgerDatabase>({ maxConnections: 2 })
// A store into this scope fails, as a full disk or a broken trigger would make it.
const FAILING_SCOPE = 'store-fails'

beforeAll(async () => {
  await createLedger(database.db)
  await sql`
    create function fail_store() returns trigger language plpgsql as $$
    begin
      if new.scope = ${sql.lit(FAILING_SCOPE)} then raise exception 'the store failed on purpose' using errcode = 'P0001'; end if;
      return new;
    end $$`.execute(database.db)
  await sql`create trigger fail_store before insert on idempotency.idempotency_keys for each row execute function fail_store()`.execute(database.db)
})

// node-postgres before 8.17 mishandles `binary: true` for every query (kysely's plain dialect
// fails the same cases): those versions run the rest of this file.
const pgVersion = (createRequire(import.meta.url)('pg/package.json') as { version: string }).version.split('.').map(Number)
const binaryWorks = pgVersion[0]! > 8 || (pgVersion[0] === 8 && pgVersion[1]! >= 17)

type Kind = 'plain' | 'optimized'
const kinds: Kind[] = ['plain', 'optimized']

/** A one-connection pool of this kind, so consecutive transactions share one session. */
function pool(kind: Kind, config: pg.PoolConfig = {}): Kysely<LedgerDatabase> {
  const pool = new pg.Pool({ connectionString: database.url, max: 1, ...config })
  pool.on('error', () => {})
  pool.on('connect', (client) => client.on('error', () => {}))
  return new Kysely<LedgerDatabase>({ dialect: kind === 'optimized' ? optimizedDialect({ pool }) : new PostgresDialect({ pool }) })
}

describe.each(kinds)('%s pool', (kind) => {
  describe.skipIf(!binaryWorks)('reading results in binary format (binary: true)', () => {
    let db: Kysely<LedgerDatabase>
    beforeAll(() => {
      db = pool(kind, { binary: true } as pg.PoolConfig) // node-postgres reads it; its types omit it
    })
    afterAll(async () => {
      await db?.destroy()
    })

    const deposit = (key: string, account: string, amount = 5) =>
      db.transaction().execute((tx) =>
        withIdempotency(tx, { scope: 'binary', key, request: { account, amount } }, async (tx) => {
          const row = await insertEntry(tx, account, amount)
          return { account: row.account, amount: row.amount, note: 'ünïcödé' }
        }),
      )

    it('replays the stored value, with the firstSeenAt the key row holds', async () => {
      const account = randomUUID()
      const key = randomUUID()
      const first = await deposit(key, account)
      const again = await deposit(key, account)
      expect(again).toEqual({ ...first, replayed: true })
      expect(again.value).toEqual({ account, amount: 5, note: 'ünïcödé' })
      // The key row's created_at, to the millisecond, as the server writes it.
      const { rows } = await sql<{ at: string }>`
        select to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as at from idempotency.idempotency_keys where key = ${key}`.execute(database.db)
      expect(again.firstSeenAt.toISOString()).toBe(rows[0]!.at)
      expect(await countEntries(database.db, account)).toBe(1)
    })

    it('refuses the same key with another request as a mismatch', async () => {
      const account = randomUUID()
      const key = randomUUID()
      await deposit(key, account, 5)
      await expect(deposit(key, account, 6)).rejects.toMatchObject({ code: IdempotencyErrorCode.KEY_MISMATCH })
    })

    it('replays a stored FinalFailure as failed', async () => {
      const key = randomUUID()
      const decline = () =>
        db.transaction().execute((tx) =>
          withIdempotency(tx, { scope: 'binary', key }, async () => {
            throw new FinalFailure({ status: 402 })
          }, { savepoint: true }),
        )
      expect(await decline()).toMatchObject({ replayed: false, failed: true, value: { status: 402 } })
      expect(await decline()).toMatchObject({ replayed: true, failed: true, value: { status: 402 } })
    })
  })

  describe("fn's own savepoints, after a failure", () => {
    let db: Kysely<LedgerDatabase>
    beforeAll(() => {
      db = pool(kind)
    })
    afterAll(async () => {
      await db?.destroy()
    })

    /**
     * fn writes and leaves the savepoint `after_writes` behind; the caller swallows whatever
     * withIdempotency reports, rolls back to that savepoint (which would undo a failure the
     * library set after it) and commits.
     */
    async function rollBackToFnsSavepoint(scope: string, fnThrows: boolean) {
      const account = randomUUID()
      const key = randomUUID()
      const attempt = db.transaction().execute(async (tx) => {
        const call = withIdempotency(tx, { scope, key }, async (tx: Transaction<LedgerDatabase>) => {
          await insertEntry(tx, account, 5)
          await sql`savepoint after_writes`.execute(tx)
          if (fnThrows) throw new Error('fn failed after its writes')
          return 'done'
        })
        // On a plain pool the call reports the failure; on an optimized one its store is still
        // held, and the next statement (here the rollback to the savepoint) reports it.
        await call.catch(() => undefined)
        await sql`rollback to savepoint after_writes`.execute(tx).catch(() => undefined)
      })
      return { account, key, attempt: await attempt.then(() => 'committed', (error: unknown) => error) }
    }

    it("commits none of fn's writes when the store failed", async () => {
      const { account, key, attempt } = await rollBackToFnsSavepoint(FAILING_SCOPE, false)
      expect(attempt).toBeInstanceOf(Error)
      expect([await countEntries(database.db, account), await countKeys(database.db, key)]).toEqual([0, 0])
    })

    it("commits none of fn's writes when fn threw", async () => {
      const { account, key, attempt } = await rollBackToFnsSavepoint('savepoints', true)
      expect(attempt).toBeInstanceOf(Error)
      expect([await countEntries(database.db, account), await countKeys(database.db, key)]).toEqual([0, 0])
    })

    it('leaves the connection healthy for the next transaction', async () => {
      await rollBackToFnsSavepoint(FAILING_SCOPE, false)
      const account = randomUUID()
      const key = randomUUID()
      const outcome = await db.transaction().execute((tx) => withIdempotency(tx, { scope: 'savepoints', key }, async (tx) => insertEntry(tx, account, 1)))
      expect(outcome.replayed).toBe(false)
      expect([await countEntries(database.db, account), await countKeys(database.db, key)]).toEqual([1, 1])
    })

    it('lets an outer call with a savepoint go on after an inner call without one failed', async () => {
      const account = randomUUID()
      const [outer, inner] = [randomUUID(), randomUUID()]
      await db.transaction().execute(async (tx) => {
        const attempt = withIdempotency(tx, { scope: 'savepoints', key: outer }, async (tx) => {
          await insertEntry(tx, account, 1)
          await withIdempotency(tx, { scope: FAILING_SCOPE, key: inner }, async (tx) => insertEntry(tx, account, 2))
          // On an optimized pool the inner store is held until this statement, which reports it.
          await insertEntry(tx, account, 3)
          return 'outer done'
        }, { savepoint: true })
        await expect(attempt).rejects.toMatchObject({ code: IdempotencyErrorCode.STORE_FAILED })
        await insertEntry(tx, account, 4)
      })
      const amounts = await database.db.selectFrom('ledger').select('amount').where('account', '=', account).execute()
      expect(amounts).toEqual([{ amount: 4 }])
      expect([await countKeys(database.db, outer), await countKeys(database.db, inner)]).toEqual([0, 0])
    })
  })
})
