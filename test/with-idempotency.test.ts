import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { beforeAll, describe, expect, it } from 'vitest'
import {
  createCustomer,
  FinalFailure,
  IdempotencyError,
  IdempotencyErrorCode,
  withIdempotency,
  type WithIdempotencyOptions,
} from '../src/index.ts'
import { countEntries, countKeys, createLedger, insertEntry, type LedgerDatabase } from './support/ledger.ts'
import { useTestDatabase } from './support/test-database.ts'

const database = useTestDatabase<LedgerDatabase>()

beforeAll(async () => {
  await createLedger(database.db)
})

/** One deposit request through withIdempotency, counting how often the handler ran. */
function deposit(account: string, key: string, amount: number, options: WithIdempotencyOptions<LedgerDatabase> = {}, scope = 'acct:POST /deposits') {
  let runs = 0
  const result = database.db.transaction().execute((tx) =>
    withIdempotency(
      tx,
      { scope, key, request: { account, amount } },
      async (tx) => {
        runs++
        const row = await insertEntry(tx, account, amount)
        return { status: 201, body: { id: row.id, account, amount } }
      },
      options,
    ),
  )
  return result.then((outcome) => ({ outcome, runs }))
}

describe('first call and replay', () => {
  it('runs fn once, stores its result in the same transaction, and replays it', async () => {
    const account = randomUUID()
    const key = randomUUID()
    const first = await deposit(account, key, 100)
    expect(first.runs).toBe(1)
    expect(first.outcome.replayed).toBe(false)
    expect(first.outcome.failed).toBe(false)
    expect(first.outcome.value).toMatchObject({ status: 201, body: { account, amount: 100 } })

    const again = await deposit(account, key, 100)
    expect(again.runs).toBe(0)
    expect(again.outcome.replayed).toBe(true)
    expect(again.outcome.value).toEqual(first.outcome.value)
    expect(again.outcome.firstSeenAt.getTime()).toBe(first.outcome.firstSeenAt.getTime())
    expect(await countEntries(database.db, account)).toBe(1)
    expect(await countKeys(database.db, key)).toBe(1)
  })

  it('treats a request with its object keys in another order as the same request', async () => {
    const key = randomUUID()
    const run = (request: unknown) =>
      database.db.transaction().execute((tx) => withIdempotency(tx, { key, request }, async () => ({ ok: true })))
    await run({ a: 1, b: { c: [1, 2], d: 'x' } })
    const again = await run({ b: { d: 'x', c: [1, 2] }, a: 1 })
    expect(again.replayed).toBe(true)
  })

  it('returns the JSON form on the first call too, so first call and replay are identical', async () => {
    const key = randomUUID()
    const at = new Date('2026-01-02T03:04:05.000Z')
    const run = () => database.db.transaction().execute((tx) => withIdempotency(tx, key, async () => ({ zeta: 1, at, skip: undefined, alpha: [] })))
    const first = await run()
    const again = await run()
    expect(first.value).toEqual({ zeta: 1, at: '2026-01-02T03:04:05.000Z', alpha: [] })
    // Byte for byte, key order included: a replayed HTTP body is the first body.
    expect(JSON.stringify(again.value)).toBe(JSON.stringify(first.value))
  })

  it('accepts a bare string key in the default scope, and a handler that returns nothing', async () => {
    const key = randomUUID()
    const first = await database.db.transaction().execute((tx) => withIdempotency(tx, key, async () => undefined))
    expect(first.value).toBeNull()
    const { rows } = await sql<{ scope: string }>`select scope from idempotency.idempotency_keys where key = ${key}`.execute(database.db)
    expect(rows).toEqual([{ scope: 'default' }])
  })
})

describe('mismatch', () => {
  it('rejects the same key with a different request by default (422)', async () => {
    const account = randomUUID()
    const key = randomUUID()
    await deposit(account, key, 100)
    const error = await deposit(account, key, 999).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(IdempotencyError)
    expect(error).toMatchObject({ code: IdempotencyErrorCode.KEY_MISMATCH, httpStatus: 422 })
    expect(await countEntries(database.db, account)).toBe(1)
  })

  it("replays the first result regardless of the request with onMismatch: 'replay'", async () => {
    const account = randomUUID()
    const key = randomUUID()
    const first = await deposit(account, key, 100, { onMismatch: 'replay' })
    const again = await deposit(account, key, 999, { onMismatch: 'replay' })
    expect(again.runs).toBe(0)
    expect(again.outcome).toMatchObject({ replayed: true, value: first.outcome.value })
    expect(await countEntries(database.db, account)).toBe(1)
  })

  it('lets a function decide inside the transaction, and even write before replaying', async () => {
    const account = randomUUID()
    const key = randomUUID()
    const seen: unknown[] = []
    const options: WithIdempotencyOptions<LedgerDatabase> = {
      onMismatch: async ({ tx, stored, request }) => {
        seen.push({ stored, request })
        // Mimic a platform that applies a changed field to the existing object, then replays.
        await tx.updateTable('ledger').set({ amount: (request as { amount: number }).amount }).where('account', '=', account).execute()
        return 'replay' as const
      },
    }
    const first = await deposit(account, key, 100, options)
    const again = await deposit(account, key, 250, options)
    expect(again.outcome).toMatchObject({ replayed: true, value: first.outcome.value })
    expect(seen).toEqual([{ stored: first.outcome.value, request: { account, amount: 250 } }])
    const row = await database.db.selectFrom('ledger').selectAll().where('account', '=', account).executeTakeFirstOrThrow()
    expect(row.amount).toBe(250)

    const rejecting = await deposit(account, key, 300, { onMismatch: () => 'reject' }).catch((e: unknown) => e)
    expect(rejecting).toMatchObject({ code: IdempotencyErrorCode.KEY_MISMATCH })
  })
})

describe('rollback', () => {
  it('keeps nothing when fn throws, and a retry runs fn again', async () => {
    const account = randomUUID()
    const key = randomUUID()
    const boom = new Error('boom')
    const failing = database.db.transaction().execute((tx) =>
      withIdempotency(tx, { key, request: { account } }, async (tx) => {
        await insertEntry(tx, account, 1)
        throw boom
      }),
    )
    await expect(failing).rejects.toBe(boom)
    expect(await countKeys(database.db, key)).toBe(0)
    expect(await countEntries(database.db, account)).toBe(0)

    const retry = await database.db.transaction().execute((tx) =>
      withIdempotency(tx, { key, request: { account } }, async (tx) => (await insertEntry(tx, account, 1)).amount),
    )
    expect(retry).toMatchObject({ replayed: false, value: 1 })
    expect(await countEntries(database.db, account)).toBe(1)
  })

  it('keeps nothing when the caller rolls back after fn succeeded', async () => {
    const account = randomUUID()
    const key = randomUUID()
    const rollback = new Error('caller rolls back')
    await expect(
      database.db.transaction().execute(async (tx) => {
        await withIdempotency(tx, key, async (tx) => insertEntry(tx, account, 5))
        throw rollback
      }),
    ).rejects.toBe(rollback)
    expect(await countKeys(database.db, key)).toBe(0)
    expect(await countEntries(database.db, account)).toBe(0)
  })

  it("fails the transaction when fn throws and the caller catches it and tries to commit", async () => {
    const account = randomUUID()
    const key = randomUUID()
    const attempt = database.db.transaction().execute(async (tx) => {
      await withIdempotency(tx, key, async (tx) => {
        await insertEntry(tx, account, 5)
        throw new Error('handled by the caller')
      }).catch(() => undefined)
    })
    // kysely sees PostgreSQL answer the COMMIT with a rollback.
    await expect(attempt).rejects.toThrow(/rolled back instead of committed/)
    expect(await countEntries(database.db, account)).toBe(0)
    expect(await countKeys(database.db, key)).toBe(0)
  })

  it("with a savepoint, rolls back only fn's writes when the caller catches fn's error and commits", async () => {
    const account = randomUUID()
    const key = randomUUID()
    await database.db.transaction().execute(async (tx) => {
      await withIdempotency(
        tx,
        key,
        async (tx) => {
          await insertEntry(tx, account, 5)
          throw new Error('handled by the caller')
        },
        { savepoint: true },
      ).catch(() => undefined)
      await insertEntry(tx, account, 7)
    })
    const rows = await database.db.selectFrom('ledger').select('amount').where('account', '=', account).execute()
    expect(rows).toEqual([{ amount: 7 }])
    expect(await countKeys(database.db, key)).toBe(0)
  })
})

describe('final failures', () => {
  it("stores and replays a FinalFailure while rolling back fn's writes", async () => {
    const account = randomUUID()
    const key = randomUUID()
    let runs = 0
    const decline = () =>
      database.db.transaction().execute((tx) =>
        withIdempotency(tx, { key, request: { account } }, async (tx) => {
          runs++
          await insertEntry(tx, account, 500)
          throw new FinalFailure({ status: 402, body: { error: 'card_declined' } })
        }, { savepoint: true }),
      )
    const first = await decline()
    expect(first).toMatchObject({ replayed: false, failed: true, value: { status: 402, body: { error: 'card_declined' } } })
    const again = await decline()
    expect(again).toMatchObject({ replayed: true, failed: true, value: first.value })
    expect(runs).toBe(1)
    expect(await countEntries(database.db, account)).toBe(0)
    expect(await countKeys(database.db, key)).toBe(1)
  })

  it('refuses a FinalFailure without a savepoint (the default) and stores nothing', async () => {
    const key = randomUUID()
    const attempt = database.db.transaction().execute((tx) =>
      withIdempotency(tx, key, async () => {
        throw new FinalFailure('declined')
      }),
    )
    await expect(attempt).rejects.toMatchObject({ code: IdempotencyErrorCode.USAGE })
    expect(await countKeys(database.db, key)).toBe(0)
  })

  it('works with a savepoint for handlers that succeed', async () => {
    const account = randomUUID()
    const key = randomUUID()
    const first = await deposit(account, key, 10, { savepoint: true })
    const again = await deposit(account, key, 10, { savepoint: true })
    expect([first.runs, again.runs, again.outcome.replayed]).toEqual([1, 0, true])
  })
})

describe('expiry', () => {
  it('treats an expired key as new even before any sweep, by the database clock', async () => {
    const account = randomUUID()
    const key = randomUUID()
    await deposit(account, key, 100, { ttl: '1h' })
    // Move the key's expiry into the past on the database clock instead of waiting an hour.
    await sql`update idempotency.idempotency_keys set expires_at = now() - interval '1 second' where key = ${key}`.execute(database.db)
    const again = await deposit(account, key, 100, { ttl: '1h' })
    expect(again).toMatchObject({ runs: 1, outcome: { replayed: false } })
    expect(await countEntries(database.db, account)).toBe(2)
    expect(await countKeys(database.db, key)).toBe(1)
    // An expired key is new even with a different request: no mismatch.
    await sql`update idempotency.idempotency_keys set expires_at = now() - interval '1 second' where key = ${key}`.execute(database.db)
    expect((await deposit(account, key, 7)).runs).toBe(1)
  })

  it('stores expires_at = completion time + ttl, default 24 hours', async () => {
    const key = randomUUID()
    const shortKey = randomUUID()
    await database.db.transaction().execute((tx) => withIdempotency(tx, key, async () => 1))
    await database.db.transaction().execute((tx) => withIdempotency(tx, shortKey, async () => 1, { ttl: 90_000 }))
    const { rows } = await sql<{ key: string; ttl: string }>`
      select key, extract(epoch from expires_at - completed_at)::text as ttl from idempotency.idempotency_keys where key in (${key}, ${shortKey})`.execute(database.db)
    expect(Object.fromEntries(rows.map((r) => [r.key, Number(r.ttl)]))).toEqual({ [key]: 86_400, [shortKey]: 90 })
  })
})

describe('scopes', () => {
  it('keeps the same key in two scopes apart, so one tenant never reads another result', async () => {
    const key = randomUUID()
    const run = (scope: string, secret: string) =>
      database.db.transaction().execute((tx) => withIdempotency(tx, { scope, key, request: null }, async () => ({ secret })))
    const a = await run('tenant-a', 'a-secret')
    const b = await run('tenant-b', 'b-secret')
    expect([a.replayed, b.replayed]).toEqual([false, false])
    expect(b.value).toEqual({ secret: 'b-secret' })
    expect((await run('tenant-a', 'other')).value).toEqual({ secret: 'a-secret' })
  })
})

describe('customer id', () => {
  it('stores the customer id on the key row', async () => {
    const key = randomUUID()
    // The customer must exist: a key row naming it is its data (see test/attack/customer-keys-outlive-deletion.test.ts).
    const { customer } = await database.db.transaction().execute((tx) => createCustomer(tx, { clientId: randomUUID(), idempotentIdentifier: `ref-${key}` }))
    const customerId = customer.customerId
    await database.db.transaction().execute((tx) => withIdempotency(tx, { key, customerId }, async () => 1))
    const { rows } = await sql<{ customer_id: string }>`select customer_id from idempotency.idempotency_keys where key = ${key}`.execute(database.db)
    expect(rows).toEqual([{ customer_id: customerId }])
  })
})

describe('results that are not JSON', () => {
  const cyclic: Record<string, unknown> = {}
  cyclic.self = cyclic
  it.each([
    ['a function', { f: () => 1 }, '$.f'],
    ['a BigInt', { amount: 10n }, '$.amount'],
    ['a cycle', { a: cyclic }, '$.a.self'],
    ['NaN', [1, Number.NaN], '$[1]'],
    ['a Map', { m: new Map() }, '$.m'],
    ['a NUL character', { s: 'a\u0000b' }, '$.s'],
    ['a lone surrogate', { s: '\ud800' }, '$.s'],
    ['undefined in an array', [undefined], '$[0]'],
  ])('refuses %s before commit and stores nothing', async (_name, value, path) => {
    const account = randomUUID()
    const key = randomUUID()
    const attempt = database.db.transaction().execute((tx) =>
      withIdempotency(tx, key, async (tx) => {
        await insertEntry(tx, account, 1)
        return value
      }),
    )
    await expect(attempt).rejects.toMatchObject({ code: IdempotencyErrorCode.RESULT_INVALID, httpStatus: 422, path })
    expect(await countKeys(database.db, key)).toBe(0)
    expect(await countEntries(database.db, account)).toBe(0)
  })

  it('refuses a request that is not JSON with a 400 before any SQL', async () => {
    const attempt = database.db.transaction().execute((tx) => withIdempotency(tx, { key: randomUUID(), request: { n: 1n } }, async () => 1))
    await expect(attempt).rejects.toMatchObject({ code: IdempotencyErrorCode.REQUEST_INVALID, httpStatus: 400, path: '$.n' })
  })
})

describe('usage', () => {
  it('refuses a Kysely instance that is not a transaction', async () => {
    const untyped = withIdempotency as (...args: unknown[]) => Promise<unknown>
    await expect(untyped(database.db, randomUUID(), async () => 1)).rejects.toMatchObject({ code: IdempotencyErrorCode.USAGE })
  })

  it('says to migrate when the schema is missing', async () => {
    const attempt = database.db.transaction().execute((tx) => withIdempotency(tx, randomUUID(), async () => 1, { schema: 'nowhere' }))
    await expect(attempt).rejects.toMatchObject({ code: IdempotencyErrorCode.NOT_MIGRATED, sqlState: '3F000' })
  })

  it('refuses nonsense options with a typed error', async () => {
    for (const options of [{ ttl: '0s' }, { ttl: 'soon' }, { waitTimeout: -1 }, { onConcurrent: 'maybe' }, { keyFormat: 'uuid7' }]) {
      const attempt = database.db.transaction().execute((tx) => withIdempotency(tx, randomUUID(), async () => 1, options as never))
      await expect(attempt).rejects.toMatchObject({ code: IdempotencyErrorCode.USAGE })
    }
  })
})

describe('nesting and sequences in one transaction', () => {
  it("rolls an outer FinalFailure back past a completed inner call: the inner key and every write go", async () => {
    const account = randomUUID()
    const [outerKey, innerKey] = [randomUUID(), randomUUID()]
    const outcome = await database.db.transaction().execute((tx) =>
      withIdempotency(tx, outerKey, async (tx) => {
        await insertEntry(tx, account, 1)
        await withIdempotency(tx, innerKey, async (tx) => insertEntry(tx, account, 2), { savepoint: true })
        await insertEntry(tx, account, 3)
        throw new FinalFailure('declined')
      }, { savepoint: true }),
    )
    expect(outcome).toMatchObject({ failed: true, value: 'declined' })
    expect(await countEntries(database.db, account)).toBe(0)
    expect(await countKeys(database.db, innerKey)).toBe(0)
    expect(await countKeys(database.db, outerKey)).toBe(1)
  })

  it('keeps an inner FinalFailure inside the inner call', async () => {
    const account = randomUUID()
    const [outerKey, innerKey] = [randomUUID(), randomUUID()]
    await database.db.transaction().execute((tx) =>
      withIdempotency(tx, outerKey, async (tx) => {
        await insertEntry(tx, account, 1)
        const inner = await withIdempotency(tx, innerKey, async (tx) => {
          await insertEntry(tx, account, 2)
          throw new FinalFailure('inner declined')
        }, { savepoint: true })
        await insertEntry(tx, account, 3)
        return inner.failed
      }),
    )
    const rows = await database.db.selectFrom('ledger').select('amount').where('account', '=', account).orderBy('amount').execute()
    expect(rows.map((r) => r.amount)).toEqual([1, 3])
    expect(await countKeys(database.db, innerKey)).toBe(1)
  })

  it('stores every one of many sequential calls in one transaction', async () => {
    const account = randomUUID()
    const keys = Array.from({ length: 20 }, () => randomUUID())
    await database.db.transaction().execute(async (tx) => {
      for (const key of keys) await withIdempotency(tx, key, async (tx) => insertEntry(tx, account, 1))
    })
    expect(await countEntries(database.db, account)).toBe(20)
  })

  it('refuses the same key nested in its own fn', async () => {
    const key = randomUUID()
    const attempt = database.db.transaction().execute((tx) => withIdempotency(tx, key, async (tx) => withIdempotency(tx, key, async () => 1)))
    await expect(attempt).rejects.toMatchObject({ code: IdempotencyErrorCode.USAGE })
    expect(await countKeys(database.db, key)).toBe(0)
  })

  it('refuses two calls running side by side on one transaction, and keeps the first intact', async () => {
    const account = randomUUID()
    const [a, b] = [randomUUID(), randomUUID()]
    const results = await database.db.transaction().execute((tx) =>
      Promise.allSettled([
        withIdempotency(tx, a, async (tx) => insertEntry(tx, account, 1)),
        withIdempotency(tx, b, async (tx) => insertEntry(tx, account, 2)),
      ]),
    )
    expect(results[0]).toMatchObject({ status: 'fulfilled' })
    expect(results[1]).toMatchObject({ status: 'rejected', reason: { code: IdempotencyErrorCode.USAGE } })
    expect(await countKeys(database.db, a)).toBe(1)
    expect(await countEntries(database.db, account)).toBe(1)
  })
})

describe('errors after fn succeeded', () => {
  it.each([false, true])("undoes fn's writes when its result cannot be stored, even if the caller commits (savepoint: %s)", async (savepoint) => {
    const account = randomUUID()
    const key = randomUUID()
    const committed = database.db.transaction().execute(async (tx) => {
      const attempt = withIdempotency(
        tx,
        key,
        async (tx) => {
          await insertEntry(tx, account, 1)
          return { amount: 1n }
        },
        { savepoint },
      )
      await expect(attempt).rejects.toMatchObject({ code: IdempotencyErrorCode.RESULT_INVALID })
    })
    if (savepoint) await committed
    else await expect(committed).rejects.toThrow(/rolled back instead of committed/)
    expect(await countEntries(database.db, account)).toBe(0)
    expect(await countKeys(database.db, key)).toBe(0)
  })

  it.each([
    ['a toJSON that returns undefined', { toJSON: () => undefined }],
    ['a getter that throws', Object.defineProperty({}, 'x', { enumerable: true, get: () => { throw new Error('no') } })],
  ])('turns %s into a typed error, for requests and results', async (_name, value) => {
    const request = database.db.transaction().execute((tx) => withIdempotency(tx, { key: randomUUID(), request: value }, async () => 1))
    await expect(request).rejects.toMatchObject({ code: IdempotencyErrorCode.REQUEST_INVALID, path: '$' })
    const result = database.db.transaction().execute((tx) => withIdempotency(tx, randomUUID(), async () => value))
    await expect(result).rejects.toMatchObject({ code: IdempotencyErrorCode.RESULT_INVALID, path: '$' })
  })
})
