// The contract every data layer passes: run once per layer (test/data-layers/<layer>.test.ts), as
// the HTTP contract runs once per framework. Real PostgreSQL, real parallel connections.
import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FinalFailure, IdempotencyError, IdempotencyErrorCode, type IsolationLevel } from '../../src/index.ts'
import { barrier, lockWatcher } from '../support/concurrency.ts'
import { countKeys } from '../support/ledger.ts'
import { sqlStateOf } from '../../src/store/sql-state.ts'
import { useTestDatabase } from '../support/test-database.ts'
import type { LayerUnderTest, OpenLayer } from './layer-under-test.ts'

const RACERS = 50
const ISOLATION_LEVELS: IsolationLevel[] = ['read committed', 'repeatable read', 'serializable']
// A result whose JSON text a careless layer could change: key order, unicode, escapes, big and
// fractional numbers, nesting, null.
const AWKWARD = { z: 1, a: [1.5, -0, 1e21, 'é\u2028"\\'], nested: { b: null, a: true, emoji: '💸' }, text: 'line\nbreak' }

/** Registers the whole contract for `layer` in the calling test file. */
export function runDataLayerContract(layer: LayerUnderTest): void {
  const database = useTestDatabase({ maxConnections: 2 })
  let open: OpenLayer<any>
  let watcher: Awaited<ReturnType<typeof lockWatcher>>

  beforeAll(async () => {
    await sql`create table if not exists contract_ledger (scope text not null, amount int not null)`.execute(database.db)
    open = await layer.open(database.url, RACERS + 1)
    watcher = await lockWatcher(database.url)
  })
  afterAll(async () => {
    await watcher?.close()
    await open?.close()
  })

  const rowsOf = async (scope: string): Promise<number> => {
    const { rows } = await sql<{ n: string }>`select count(*)::text as n from contract_ledger where scope = ${scope}`.execute(database.db)
    return Number(rows[0]!.n)
  }
  const heldAdvisoryLocks = async (): Promise<number> => {
    const { rows } = await sql<{ n: string }>`select count(*)::text as n from pg_locks where locktype = 'advisory' and database = (select oid from pg_database where datname = current_database())`.execute(database.db)
    return Number(rows[0]!.n)
  }
  // One transaction of the layer's database, one withIdempotency call in it.
  const once = <T>(key: string, fn: (tx: any) => Promise<T>, options: Record<string, unknown> = {}, request: unknown = null) =>
    open.database.transaction((tx) => open.withIdempotency(tx, { scope: 'contract', key, request }, fn, options))

  describe(`${layer.name}: at most once`, () => {
    it.each(ISOLATION_LEVELS)('%s: fifty transactions on one key write one row; each other replays it or gets a typed retryable error', async (isolation) => {
      const scope = randomUUID()
      const key = randomUUID()
      const start = barrier(RACERS)
      let runs = 0
      const attempt = (first: boolean) =>
        open.database.transaction(
          async (tx) => {
            if (first) {
              // The snapshot of REPEATABLE READ and SERIALIZABLE is taken here, before any claim.
              await open.database.session(tx).run({ text: 'select 1', values: [] })
              await start.arrive()
            }
            return open.withIdempotency(tx, { scope: 'race', key, request: { scope } }, async (tx) => {
              const run = ++runs
              await open.insertLedgerRow(tx, scope, 100)
              // Hold the key until every other racer is queued on its lock.
              if (first) await watcher.untilWaiting(RACERS - 1)
              return { run }
            })
          },
          { isolation },
        )
      const settled = await Promise.allSettled(Array.from({ length: RACERS }, () => attempt(true)))
      expect(runs).toBe(1)
      expect(await rowsOf(scope)).toBe(1)
      expect(await countKeys(database.db, key)).toBe(1)
      const outcomes = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []))
      const errors = settled.flatMap((s) => (s.status === 'rejected' ? [s.reason as unknown] : []))
      expect(outcomes.filter((o) => !o.replayed)).toHaveLength(1)
      for (const o of outcomes) expect(o.value).toEqual({ run: 1 })
      for (const error of errors) {
        expect(error).toBeInstanceOf(IdempotencyError)
        expect(error).toMatchObject({ code: IdempotencyErrorCode.SNAPSHOT_CONFLICT, retryable: true })
      }
      if (isolation === 'read committed') expect(errors).toHaveLength(0)
      else expect(errors).toHaveLength(RACERS - 1)
      // Each loser retries, as its error says, and gets the replay.
      const retried = await Promise.all(errors.map(() => attempt(false)))
      for (const o of retried) expect(o).toMatchObject({ replayed: true, value: { run: 1 } })
      expect(runs).toBe(1)
      expect(await rowsOf(scope)).toBe(1)
    })
  })

  describe(`${layer.name}: replays`, () => {
    it('replays the stored value byte for byte, with the first call’s firstSeenAt as a Date', async () => {
      const key = randomUUID()
      const first = await once(key, async () => AWKWARD)
      const second = await once(key, async () => ({ other: true }))
      const third = await once(key, async () => ({ other: true }))
      expect(first).toMatchObject({ replayed: false, failed: false })
      for (const replay of [second, third]) {
        expect(replay).toMatchObject({ replayed: true, failed: false })
        expect(replay.value).toEqual(first.value)
        expect(JSON.stringify(replay.value)).toBe(JSON.stringify(first.value))
        expect(replay.firstSeenAt).toBeInstanceOf(Date)
        expect(replay.firstSeenAt.getTime()).toBe(first.firstSeenAt.getTime())
      }
      expect(first.firstSeenAt).toBeInstanceOf(Date)
      expect(JSON.stringify(first.value)).toBe(JSON.stringify(JSON.parse(JSON.stringify(AWKWARD))))
      expect(Math.abs(first.firstSeenAt.getTime() - Date.now())).toBeLessThan(60_000)
    })
  })

  describe(`${layer.name}: mismatch`, () => {
    it('rejects the same key with another request (IDEMPOTENCY_KEY_MISMATCH)', async () => {
      const key = randomUUID()
      await once(key, async () => 'first', {}, { amount: 1 })
      await expect(once(key, async () => 'second', {}, { amount: 2 })).rejects.toMatchObject({ code: IdempotencyErrorCode.KEY_MISMATCH })
    })

    it("replays it under onMismatch: 'replay', and lets a function decide, writing through the layer's own transaction", async () => {
      const key = randomUUID()
      const scope = randomUUID()
      await once(key, async () => 'first', {}, { amount: 1 })
      await expect(once(key, async () => 'second', { onMismatch: 'replay' }, { amount: 2 })).resolves.toMatchObject({ value: 'first', replayed: true })
      let seen: unknown
      const outcome = await open.database.transaction((tx) =>
        open.withIdempotency(tx, { scope: 'contract', key, request: { amount: 3 } }, async () => 'third', {
          onMismatch: async (mismatch) => {
            seen = mismatch.tx === tx && mismatch.stored === 'first' && mismatch.firstSeenAt instanceof Date
            await open.insertLedgerRow(mismatch.tx, scope, 3)
            return 'replay' as const
          },
        }),
      )
      expect(outcome).toMatchObject({ value: 'first', replayed: true })
      expect(seen).toBe(true)
      expect(await rowsOf(scope)).toBe(1)
    })
  })

  describe(`${layer.name}: rollback keeps nothing`, () => {
    it('keeps no row and no key when fn throws', async () => {
      const key = randomUUID()
      const scope = randomUUID()
      const failure = new Error('fn fails')
      await expect(
        once(key, async (tx) => {
          await open.insertLedgerRow(tx, scope, 1)
          throw failure
        }),
      ).rejects.toBe(failure)
      expect(await rowsOf(scope)).toBe(0)
      expect(await countKeys(database.db, key)).toBe(0)
      // The key is free: a retry runs fn.
      await expect(once(key, async () => 'retried')).resolves.toMatchObject({ value: 'retried', replayed: false })
    })

    it("does not let a caller who catches fn's error commit fn's writes", async () => {
      const key = randomUUID()
      const scope = randomUUID()
      await open.database
        .transaction(async (tx) => {
          await open
            .withIdempotency(tx, { scope: 'contract', key }, async (tx) => {
              await open.insertLedgerRow(tx, scope, 1)
              throw new Error('fn fails')
            })
            .catch(() => undefined)
          return 'committed?'
        })
        .catch(() => undefined)
      expect(await rowsOf(scope)).toBe(0)
      expect(await countKeys(database.db, key)).toBe(0)
    })
  })

  describe(`${layer.name}: final failures`, () => {
    it('stores a FinalFailure (savepoint: true), rolls back its writes, and replays it as failed', async () => {
      const key = randomUUID()
      const scope = randomUUID()
      const declined = await once(
        key,
        async (tx) => {
          await open.insertLedgerRow(tx, scope, 1)
          throw new FinalFailure({ status: 402, reason: 'declined' })
        },
        { savepoint: true },
      )
      expect(declined).toMatchObject({ failed: true, replayed: false, value: { status: 402, reason: 'declined' } })
      expect(await rowsOf(scope)).toBe(0)
      expect(await countKeys(database.db, key)).toBe(1)
      const replay = await once(key, async () => 'ran again', { savepoint: true })
      expect(replay).toMatchObject({ failed: true, replayed: true, value: { status: 402, reason: 'declined' } })
      expect(replay.firstSeenAt.getTime()).toBe(declined.firstSeenAt.getTime())
    })
  })

  describe(`${layer.name}: expiry`, () => {
    it('runs fn again for a key past its expiry', async () => {
      const key = randomUUID()
      const scope = randomUUID()
      const write = (value: string) => async (tx: any) => {
        await open.insertLedgerRow(tx, scope, 1)
        return value
      }
      await expect(once(key, write('first'), { ttl: '1h' })).resolves.toMatchObject({ value: 'first', replayed: false })
      await expect(once(key, write('second'), { ttl: '1h' })).resolves.toMatchObject({ value: 'first', replayed: true })
      await sql`update idempotency.idempotency_keys set expires_at = now() - interval '1 second' where key = ${key}`.execute(database.db)
      await expect(once(key, write('third'), { ttl: '1h' })).resolves.toMatchObject({ value: 'third', replayed: false })
      expect(await rowsOf(scope)).toBe(2)
      expect(await countKeys(database.db, key)).toBe(1)
    })
  })

  describe(`${layer.name}: nesting`, () => {
    it('runs a call with its own key inside fn of another, both stored and replayed', async () => {
      const outer = randomUUID()
      const inner = randomUUID()
      const scope = randomUUID()
      const nested = () =>
        open.database.transaction((tx) =>
          open.withIdempotency(tx, { scope: 'contract', key: outer }, async (tx) => {
            const innerOutcome = await open.withIdempotency(tx, { scope: 'contract', key: inner }, async (tx) => {
              await open.insertLedgerRow(tx, scope, 1)
              return 'inner'
            })
            await open.insertLedgerRow(tx, scope, 2)
            return { inner: innerOutcome.value, replayedInner: innerOutcome.replayed }
          }),
        )
      await expect(nested()).resolves.toMatchObject({ replayed: false, value: { inner: 'inner', replayedInner: false } })
      await expect(nested()).resolves.toMatchObject({ replayed: true, value: { inner: 'inner', replayedInner: false } })
      await expect(once(inner, async () => 'again')).resolves.toMatchObject({ replayed: true, value: 'inner' })
      expect(await rowsOf(scope)).toBe(2)
    })

    it('refuses the same key nested in itself (IDEMPOTENCY_USAGE) and keeps nothing', async () => {
      const key = randomUUID()
      const scope = randomUUID()
      const attempt = open.database.transaction((tx) =>
        open.withIdempotency(tx, { scope: 'contract', key }, async (tx) => {
          await open.insertLedgerRow(tx, scope, 1)
          return open.withIdempotency(tx, { scope: 'contract', key }, async () => 'twice')
        }),
      )
      await expect(attempt).rejects.toMatchObject({ code: IdempotencyErrorCode.USAGE, retryable: false })
      expect(await rowsOf(scope)).toBe(0)
      expect(await countKeys(database.db, key)).toBe(0)
    })
  })

  describe(`${layer.name}: a lost connection`, () => {
    it.skipIf(layer.skipLostConnection !== undefined)(`fails the store with a typed retryable error when the connection dies after fn, and keeps nothing${layer.skipLostConnection ? ` (skipped: ${layer.skipLostConnection})` : ''}`, async () => {
      const key = randomUUID()
      const scope = randomUUID()
      const attempt = open.database.transaction((tx) =>
        open.withIdempotency(tx, { scope: 'contract', key }, async (tx) => {
          await open.insertLedgerRow(tx, scope, 1)
          const [row] = await open.database.session(tx).run({ text: 'select pg_backend_pid()::text as pid', values: [] })
          await sql`select pg_terminate_backend(${Number(row!.pid)})`.execute(database.db)
          return 'lost'
        }),
      )
      await expect(attempt).rejects.toMatchObject({ code: IdempotencyErrorCode.STORE_FAILED, retryable: true })
      expect(await rowsOf(scope)).toBe(0)
      expect(await countKeys(database.db, key)).toBe(0)
      // The layer's pool goes on with a working connection; the same key runs fn again.
      await expect(once(key, async () => 'retried')).resolves.toMatchObject({ value: 'retried', replayed: false })
    })
  })

  describe(`${layer.name}: a COMMIT the server refuses`, () => {
    it("rejects the layer's transaction with an error that carries the SQLSTATE (what an HTTP route retries on)", async () => {
      // A deferred constraint trigger fails the COMMIT itself with a serialization failure.
      await sql`create table if not exists contract_commit_refused (id int)`.execute(database.db)
      await sql`create or replace function contract_refuse_commit() returns trigger language plpgsql as $$
                begin raise exception 'refused at commit' using errcode = '40001'; end $$`.execute(database.db)
      await sql`drop trigger if exists refuse_commit on contract_commit_refused`.execute(database.db)
      await sql`create constraint trigger refuse_commit after insert on contract_commit_refused deferrable initially deferred
                for each row execute function contract_refuse_commit()`.execute(database.db)
      const attempt = open.database.transaction(async (tx) => {
        await open.database.session(tx).run({ text: 'insert into contract_commit_refused values (1)', values: [] })
        return 'committed?'
      })
      const error = await attempt.then(
        () => undefined,
        (error: unknown) => error,
      )
      expect(sqlStateOf(error)).toBe('40001')
    })

    it("reads the SQLSTATE of the app's own write through the layer's wrapping (database.sqlStateOf)", async () => {
      // A serialization failure of the business write itself, made through the layer's own API.
      await sql`create or replace function contract_refuse_write() returns trigger language plpgsql as $$
                begin if new.amount = -40001 then raise exception 'refused write' using errcode = '40001'; end if; return new; end $$`.execute(database.db)
      await sql`drop trigger if exists refuse_write on contract_ledger`.execute(database.db)
      await sql`create trigger refuse_write before insert on contract_ledger for each row execute function contract_refuse_write()`.execute(database.db)
      const error = await open.database
        .transaction((tx) => open.insertLedgerRow(tx, randomUUID(), -40001))
        .then(
          () => undefined,
          (error: unknown) => error,
        )
      expect(error).toBeDefined()
      expect(open.database.sqlStateOf(error)).toBe('40001')
    })
  })

  describe(`${layer.name}: only inside a transaction`, () => {
    it('refuses everything that is not a transaction with IDEMPOTENCY_USAGE before any work', async () => {
      const candidates = await open.notTransactions()
      expect(candidates.length).toBeGreaterThan(0)
      for (const { label, value, release } of candidates) {
        const key = randomUUID()
        let ran = false
        try {
          const attempt = Promise.resolve().then(() =>
            open.withIdempotency(value as never, { scope: 'contract', key }, async () => {
              ran = true
              return 'ran'
            }),
          )
          await expect(attempt, label).rejects.toMatchObject({ code: IdempotencyErrorCode.USAGE, retryable: false })
          expect(ran, label).toBe(false)
          expect(await countKeys(database.db, key), label).toBe(0)
          expect(await heldAdvisoryLocks(), label).toBe(0)
        } finally {
          await release?.()
        }
      }
    })
  })
}
