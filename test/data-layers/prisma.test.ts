// The Prisma layer (Prisma 7 through @prisma/adapter-pg) against real PostgreSQL: the data-layer
// contract's cases, until the shared suite (contract.ts) runs it, and what is Prisma's own: its
// transaction timeout, its client refused in place of a transaction.
import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { database, FinalFailure, prismaSession, withIdempotency, type IdempotencyOutcome } from '../../src/data/prisma/index.ts'
import type { IsolationLevel } from '../../src/data/database.ts'
import { IdempotencyError, IdempotencyErrorCode } from '../../src/errors.ts'
import { barrier, Latch, lockWatcher } from '../support/concurrency.ts'
import { useTestDatabase } from '../support/test-database.ts'
import type { OpenLayer } from './layer-under-test.ts'
import { openPrisma, prismaLayer, type PrismaTx } from './prisma-layer.ts'

const RACERS = 50
const test = useTestDatabase({ maxConnections: 2 })
let layer: OpenLayer<PrismaTx>
let watcher: Awaited<ReturnType<typeof lockWatcher>>

beforeAll(async () => {
  await sql`create table contract_ledger (scope text not null, amount int not null)`.execute(test.db)
  layer = await prismaLayer.open(test.url, RACERS + 1)
  watcher = await lockWatcher(test.url)
})
afterAll(async () => {
  await layer?.close()
  await watcher?.close()
})

const ledgerRows = async (scope: string) =>
  Number((await sql<{ n: string }>`select count(*)::text as n from contract_ledger where scope = ${scope}`.execute(test.db)).rows[0]!.n)
const keyRows = async (key: string) =>
  Number((await sql<{ n: string }>`select count(*)::text as n from idempotency.idempotency_keys where key = ${key}`.execute(test.db)).rows[0]!.n)

/** One call of the layer's withIdempotency in a transaction of the layer's database. */
const call = <T>(key: string, fn: (tx: PrismaTx) => Promise<T>, options: Parameters<OpenLayer<PrismaTx>['withIdempotency']>[3] = {}, request: unknown = { key }) =>
  layer.database.transaction((tx) => layer.withIdempotency(tx, { scope: 'prisma', key, request }, fn, options))

/** A first call on `key` that holds the key until the latch is released, then returns 'first'. */
const holdKey = (key: string, latch: Latch) =>
  call(key, async () => {
    await latch.hold()
    return 'first'
  })

describe.each<IsolationLevel>(['read committed', 'repeatable read', 'serializable'])('%s: fifty transactions, one key', (isolation) => {
  it('runs fn once and writes one ledger row; the others replay, or (with a snapshot) get the typed retryable conflict', async () => {
    const key = randomUUID()
    const start = barrier(RACERS)
    let runs = 0
    const attempt = () =>
      layer.database
        .transaction(
          async (tx) => {
            await tx.$queryRawUnsafe('select 1') // the snapshot of REPEATABLE READ and SERIALIZABLE is taken here
            await start.arrive()
            return layer.withIdempotency(tx, { scope: 'race', key }, async (tx) => {
              const run = ++runs
              await layer.insertLedgerRow(tx, key, 100)
              await watcher.untilWaiting(RACERS - 1) // hold the key until all the others queue on it
              return { run }
            })
          },
          { isolation },
        )
        .then(
          (outcome) => ({ outcome }),
          (error: unknown) => ({ error }),
        )
    const results = await Promise.all(Array.from({ length: RACERS }, attempt))
    expect(runs).toBe(1)
    expect(await ledgerRows(key)).toBe(1)
    expect(await keyRows(key)).toBe(1)
    const outcomes = results.flatMap((r) => ('outcome' in r ? [r.outcome] : []))
    const errors = results.flatMap((r) => ('error' in r ? [r.error] : []))
    expect(outcomes.filter((o) => !o.replayed)).toEqual([expect.objectContaining({ value: { run: 1 } })])
    for (const o of outcomes) expect(o.value).toEqual({ run: 1 })
    for (const error of errors) expect(error).toMatchObject({ code: IdempotencyErrorCode.SNAPSHOT_CONFLICT, retryable: true })
    // Under a snapshot every loser's predates the winner's commit (PostgreSQL's 40001, through Prisma's P2010).
    expect(errors).toHaveLength(isolation === 'read committed' ? 0 : RACERS - 1)
    const retry = await layer.database.transaction((tx) => layer.withIdempotency(tx, { scope: 'race', key }, async () => ({ run: -1 })), { isolation })
    expect(retry).toMatchObject({ replayed: true, value: { run: 1 } })
  })
})

it('replays the stored value without running fn; firstSeenAt is a Date, the same each time', async () => {
  const key = randomUUID()
  const value = { status: 201, body: { id: key, amount: 12.5, tags: ['a', 'é'], nested: { none: null, yes: true } } }
  const first = await call(key, async (tx) => {
    await layer.insertLedgerRow(tx, key, 1)
    return value
  })
  const fn = vi.fn(async () => ({ status: 500, body: null }))
  const second = await call(key, fn)
  expect(fn).not.toHaveBeenCalled()
  expect(first).toMatchObject({ replayed: false, failed: false, value })
  expect(second).toMatchObject({ replayed: true, failed: false })
  expect(JSON.stringify(second.value)).toBe(JSON.stringify(first.value))
  expect(first.firstSeenAt).toBeInstanceOf(Date)
  expect(second.firstSeenAt).toBeInstanceOf(Date)
  expect(second.firstSeenAt.getTime()).toBe(first.firstSeenAt.getTime())
  expect(await ledgerRows(key)).toBe(1)
})

it('rejects the same key with another request (IDEMPOTENCY_KEY_MISMATCH), or replays it when told to', async () => {
  const key = randomUUID()
  await call(key, async () => 'first', {}, { amount: 1 })
  await expect(call(key, async () => 'second', {}, { amount: 2 })).rejects.toMatchObject({ code: IdempotencyErrorCode.KEY_MISMATCH })
  await expect(call(key, async () => 'second', { onMismatch: 'replay' }, { amount: 2 })).resolves.toMatchObject({ value: 'first', replayed: true })
})

it('keeps nothing when fn throws: no ledger row, no key; a retry runs fn again', async () => {
  const key = randomUUID()
  const failing = call(key, async (tx) => {
    await layer.insertLedgerRow(tx, key, 1)
    throw new Error('handler failed')
  })
  await expect(failing).rejects.toThrow('handler failed')
  expect(await ledgerRows(key)).toBe(0)
  expect(await keyRows(key)).toBe(0)
  await expect(call(key, async () => 'retried')).resolves.toMatchObject({ value: 'retried', replayed: false })
})

it('stores a FinalFailure with savepoint: true, rolls back only its writes and replays it', async () => {
  const key = randomUUID()
  const declined = { status: 402, body: { error: 'insufficient_funds' } }
  const attempt = () =>
    call(
      key,
      async (tx) => {
        await layer.insertLedgerRow(tx, key, 1)
        throw new FinalFailure(declined)
      },
      { savepoint: true },
    )
  await expect(attempt()).resolves.toMatchObject({ failed: true, replayed: false, value: declined })
  await expect(attempt()).resolves.toMatchObject({ failed: true, replayed: true, value: declined })
  expect(await ledgerRows(key)).toBe(0)
  expect(await keyRows(key)).toBe(1)
  // Without a savepoint a FinalFailure cannot undo fn's writes: refused, nothing kept.
  const other = randomUUID()
  await expect(call(other, async () => Promise.reject(new FinalFailure(declined)))).rejects.toMatchObject({ code: IdempotencyErrorCode.USAGE })
  expect(await keyRows(other)).toBe(0)
})

it('nests: a call inside fn on the same tx commits with the outer one, and rolls back with it', async () => {
  const outer = randomUUID()
  const inner = randomUUID()
  const nested = (fail: boolean) =>
    call(outer, async (tx) => {
      const result = await layer.withIdempotency(tx, { scope: 'prisma', key: inner }, async (tx) => {
        await layer.insertLedgerRow(tx, inner, 1)
        return 'inner'
      })
      await layer.insertLedgerRow(tx, outer, 1)
      if (fail) throw new Error('outer fails')
      return { inner: result.value }
    })
  await expect(nested(true)).rejects.toThrow('outer fails')
  expect([await keyRows(outer), await keyRows(inner), await ledgerRows(inner)]).toEqual([0, 0, 0])
  await expect(nested(false)).resolves.toMatchObject({ value: { inner: 'inner' }, replayed: false })
  expect([await keyRows(outer), await keyRows(inner), await ledgerRows(outer), await ledgerRows(inner)]).toEqual([1, 1, 1, 1])
  // The same key nested in itself would claim it twice: refused.
  const again = randomUUID()
  await expect(call(again, (tx) => layer.withIdempotency(tx, { scope: 'prisma', key: again }, async () => 'x'))).rejects.toMatchObject({ code: IdempotencyErrorCode.USAGE })
})

it('refuses the PrismaClient (and an extended one) with IDEMPOTENCY_USAGE before any statement runs', async () => {
  const prisma = openPrisma(test.url, 1)
  try {
    const raw = vi.spyOn(prisma, '$queryRawUnsafe')
    const key = randomUUID()
    const fn = vi.fn(async () => 'never')
    for (const notATransaction of [...(await layer.notTransactions()).map((t) => t.value), prisma]) {
      await expect(layer.withIdempotency(notATransaction as PrismaTx, key, fn)).rejects.toMatchObject({ code: IdempotencyErrorCode.USAGE })
      expect(() => prismaSession(notATransaction as PrismaTx)).toThrow(/inside a transaction \(prisma\)/)
    }
    expect(raw).not.toHaveBeenCalled()
    expect(fn).not.toHaveBeenCalled()
    expect(await keyRows(key)).toBe(0)
  } finally {
    await prisma.$disconnect()
  }
})

it('bounds the wait: a waiter gives up with IDEMPOTENCY_KEY_IN_PROGRESS after waitTimeout (55P03 through Prisma)', async () => {
  const key = randomUUID()
  const latch = new Latch()
  const holder = holdKey(key, latch)
  await latch.entered
  const waiter = call(key, async () => 'second', { waitTimeout: '100ms', retryAfterSeconds: 3 })
  await expect(waiter).rejects.toMatchObject({ code: IdempotencyErrorCode.KEY_IN_PROGRESS, retryable: true, retryAfterSeconds: 3 })
  expect((await waiter.catch((error: IdempotencyError) => error.cause)) as unknown).toMatchObject({ name: 'PrismaStatementError', code: '55P03' })
  latch.release()
  await expect(holder).resolves.toMatchObject({ value: 'first', replayed: false })
  await expect(call(key, async () => 'third')).resolves.toMatchObject({ value: 'first', replayed: true })
})

it("outlasts Prisma's default 5 s transaction timeout: a waiter held 6 s behind its twin still replays", async () => {
  const key = randomUUID()
  const latch = new Latch()
  const holder = holdKey(key, latch)
  await latch.entered
  const waiter = call(key, async () => 'second')
  await watcher.untilWaiting(1)
  await new Promise((resolve) => setTimeout(resolve, 6_000))
  latch.release()
  await expect(holder).resolves.toMatchObject({ value: 'first', replayed: false })
  await expect(waiter).resolves.toMatchObject({ value: 'first', replayed: true })
})

it('opens its transactions at the isolation level asked for', async () => {
  const levels = await Promise.all(
    (['read committed', 'repeatable read', 'serializable', undefined] as const).map((isolation) =>
      layer.database.transaction(
        async (tx) => ((await tx.$queryRawUnsafe<{ level: string }[]>("select current_setting('transaction_isolation') as level"))[0]!.level),
        isolation === undefined ? {} : { isolation },
      ),
    ),
  )
  expect(levels).toEqual(['read committed', 'repeatable read', 'serializable', 'read committed'])
})

it('is natively typed: fn gets the generated transaction client, and the PrismaClient is a type error', async () => {
  const key = randomUUID()
  const outcome: IdempotencyOutcome<number> = await call(key, async (tx) => {
    const row = await tx.contract_ledger.create({ data: { scope: key, amount: 7 } })
    return row.amount
  })
  expect(outcome.value).toBe(7)
  const prisma = openPrisma(test.url, 1)
  try {
    // The subpath's own withIdempotency (the contract's signature takes any Tx).
    await prisma.$transaction((tx) => withIdempotency(tx, randomUUID(), async (inner: PrismaTx) => inner.contract_ledger.count()))
    // @ts-expect-error: the PrismaClient is not a transaction (its raw queries autocommit)
    await expect(withIdempotency(prisma, key, async () => 1)).rejects.toBeInstanceOf(IdempotencyError)
  } finally {
    await prisma.$disconnect()
  }
})

it("sends the library's Buffers as bytea and reads its text columns as strings", async () => {
  const rows = await layer.database.transaction((tx) =>
    layer.database.session(tx).run({ text: "select encode($1::bytea, 'hex') as hex, $2::int::text as n, $3::boolean::text as b, $4::text as nothing", values: [Buffer.from([0, 1, 255]), 42, true, null] }),
  )
  expect(rows).toEqual([{ hex: '0001ff', n: '42', b: 'true', nothing: null }])
})

it("works on an extended client's transactions, typed as that client's", async () => {
  const prisma = openPrisma(test.url, 2)
  try {
    const extended = prisma.$extends({ model: { contract_ledger: { async addOne(scope: string) { await prisma.contract_ledger.count({ where: { scope } }) } } } })
    const key = randomUUID()
    const outcome = await database(extended).transaction((tx) =>
      withIdempotency(tx, key, async (tx) => {
        await tx.contract_ledger.create({ data: { scope: key, amount: 1 } })
        return typeof tx.contract_ledger.addOne
      }),
    )
    expect(outcome).toMatchObject({ value: 'function', replayed: false })
    await expect(extended.$transaction((tx) => withIdempotency(tx, key, async () => 'again'))).resolves.toMatchObject({ value: 'function', replayed: true })
  } finally {
    await prisma.$disconnect()
  }
})
