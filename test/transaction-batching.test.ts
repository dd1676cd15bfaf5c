// optimizedDialect sends the claim in BEGIN's message and the stored result in COMMIT's. These tests
// show that it does, and that nothing about what commits changes: a store that fails takes the
// handler's writes with it, whatever the caller does next.
import { randomUUID } from 'node:crypto'
import { CompiledQuery, Kysely, sql, type Dialect, type IsolationLevel, type Transaction } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { IdempotencyError, IdempotencyErrorCode, IdempotencyStoreError, migrate, optimizedDialect, withIdempotency } from '../src/index.ts'
import { countEntries, countKeys, createLedger, insertEntry, type LedgerDatabase } from './support/ledger.ts'
import { Latch, lockWatcher } from './support/concurrency.ts'
import { useTestDatabase } from './support/test-database.ts'
import { connect } from '../tools/databases.ts'

const database = useTestDatabase<LedgerDatabase>({ maxConnections: 2 })
// A store into this scope fails, as a full disk or a broken trigger would make it.
const FAILING_SCOPE = 'store-fails'
// A store into this one takes 0.3 s.
const SLOW_SCOPE = 'store-slow'
// A store into this one is discarded without an error, as a trigger returning NULL or a rule would.
const DISCARDING_SCOPE = 'store-discarded'
// A store of this result fails, whatever its scope.
const REFUSED_RESULT = 'refused on purpose'

beforeAll(async () => {
  await createLedger(database.db)
  await sql`
    create function fail_store() returns trigger language plpgsql as $$
    begin
      if new.scope = ${sql.lit(FAILING_SCOPE)} then raise exception 'the store failed on purpose' using errcode = 'P0001'; end if;
      if new.scope = ${sql.lit(SLOW_SCOPE)} then perform pg_sleep(0.3); end if;
      if new.scope = ${sql.lit(DISCARDING_SCOPE)} then return null; end if;
      if new.response::text = ${sql.lit(JSON.stringify(REFUSED_RESULT))} then raise exception 'this result is refused' using errcode = 'P0001'; end if;
      return new;
    end $$`.execute(database.db)
  await sql`create trigger fail_store before insert on idempotency.idempotency_keys for each row execute function fail_store()`.execute(database.db)
})

interface OneConnection {
  db: Kysely<LedgerDatabase>
  pool: pg.Pool
  dialect: Dialect
  /** What went to node-postgres, one entry per message (each ends with a Sync: one round trip). */
  sent: string[]
  /** Resolves once a message whose text contains `fragment` has gone to node-postgres. */
  untilSent(fragment: string): Promise<void>
  /**
   * Messages handed to node-postgres while the one before had not finished, so that node-postgres
   * had to queue them client-side (which pg 9 drops). Read from node-postgres's own flag: a test
   * may look under the hood where the library must not.
   */
  queued: { count: number }
}

/** One connection through optimizedDialect, each of its round trips recorded. */
function oneConnection(config: pg.PoolConfig = {}): OneConnection {
  const pool = new pg.Pool({ connectionString: database.url, max: 1, ...config })
  const sent: string[] = []
  const waiting: Array<{ fragment: string; resolve: () => void }> = []
  const queued = { count: 0 }
  pool.on('error', () => {})
  // What the dialect hands node-postgres: each call is one message, so one round trip.
  pool.on('connect', (client) => {
    client.on('error', () => {})
    const query = client.query.bind(client) as (...args: unknown[]) => unknown
    ;(client as unknown as { query: typeof query }).query = (...args) => {
      const [first] = args as [unknown]
      const label = typeof first === 'string' ? first : typeof (first as { submit?: unknown }).submit === 'function' ? 'batch' : 'named'
      sent.push(label)
      if ((client as unknown as { readyForQuery?: boolean }).readyForQuery !== true) queued.count++
      const result = query(...args)
      for (const waiter of waiting.filter((waiter) => label.includes(waiter.fragment))) waiter.resolve()
      return result
    }
  })
  const dialect = optimizedDialect({ pool })
  const untilSent = (fragment: string) => new Promise<void>((resolve) => waiting.push({ fragment, resolve }))
  return { db: new Kysely<LedgerDatabase>({ dialect }), pool, dialect, sent, untilSent, queued }
}

let one: OneConnection
beforeAll(() => {
  one = oneConnection()
})
afterAll(async () => {
  await one?.db.destroy()
})

const deposit = (db: Kysely<LedgerDatabase>, scope: string, key: string, account: string) =>
  db.transaction().execute((tx) => withIdempotency(tx, { scope, key, request: { account } }, async (tx) => insertEntry(tx, account, 5)))

/** The transaction the connection is in, as the server sees it: null outside one. */
async function serverTransaction(db: Kysely<any>): Promise<string | null> {
  const { rows } = await sql<{ xact: string | null }>`
    select case when xact_start = query_start then null else xact_start::text end as xact
    from pg_stat_activity where pid = pg_backend_pid()`.execute(db)
  return rows[0]!.xact
}

it('makes a first call as many round trips as the bare transaction, and a replay one fewer', async () => {
  const account = randomUUID()
  const key = randomUUID()
  await deposit(one.db, 'batching', key, account) // the first use on a connection parses the statements
  one.sent.length = 0
  await deposit(one.db, 'batching', randomUUID(), account)
  // BEGIN + claim, the handler's INSERT, store + COMMIT.
  expect(one.sent).toEqual(['batch', expect.stringContaining('insert into "ledger"'), 'batch'])
  one.sent.length = 0
  const replay = await deposit(one.db, 'batching', key, account)
  expect(replay.replayed).toBe(true)
  expect(one.sent).toEqual(['batch', 'commit'])
  expect(await countEntries(one.db, account)).toBe(2)
})

it('sends each statement in a round trip of its own with { batching: false }, still named', async () => {
  const pool = new pg.Pool({ connectionString: database.url, max: 1 })
  const sent: string[] = []
  pool.on('connect', (client) => {
    const query = client.query.bind(client) as (...args: unknown[]) => unknown
    ;(client as unknown as { query: typeof query }).query = (...args) => {
      sent.push(typeof args[0] === 'string' ? args[0] : 'batch')
      return query(...args)
    }
  })
  const db = new Kysely<LedgerDatabase>({ dialect: optimizedDialect({ pool }, { batching: false }) })
  try {
    await deposit(db, 'batching', randomUUID(), randomUUID())
    sent.length = 0
    await deposit(db, 'batching', randomUUID(), randomUUID())
    // BEGIN, the claim, the handler's INSERT, the store, COMMIT; the library's two as named statements.
    expect(sent).toEqual(['begin', 'batch', expect.stringContaining('insert into "ledger"'), 'batch', 'commit'])
    const { rows } = await sql<{ name: string }>`select name from pg_prepared_statements order by name`.execute(db)
    expect(rows.map((row) => row.name)).toEqual([expect.stringMatching(/^pg_idempotency_claim_/), expect.stringMatching(/^pg_idempotency_complete_/)])
  } finally {
    await db.destroy()
  }
})

it('stores before any later statement of the transaction, which sees the key', async () => {
  const key = randomUUID()
  const seen = await one.db.transaction().execute(async (tx) => {
    await withIdempotency(tx, { scope: 'batching', key }, async () => 'done')
    return countKeys(tx, key)
  })
  expect(seen).toBe(1)
})

it('stores both keys of nested calls', async () => {
  const [outer, inner] = [randomUUID(), randomUUID()]
  const account = randomUUID()
  await one.db.transaction().execute((tx) =>
    withIdempotency(tx, { scope: 'batching', key: outer }, async (tx) => {
      await withIdempotency(tx, { scope: 'batching', key: inner }, async (tx) => insertEntry(tx, account, 1))
      return insertEntry(tx, account, 2)
    }),
  )
  expect([await countKeys(one.db, outer), await countKeys(one.db, inner), await countEntries(one.db, account)]).toEqual([1, 1, 2])
})

describe('a store that fails', () => {
  it('fails the COMMIT with a typed error, and nothing of the handler is kept', async () => {
    const account = randomUUID()
    const key = randomUUID()
    let returned = false
    const attempt = one.db.transaction().execute(async (tx) => {
      const outcome = await withIdempotency(tx, { scope: FAILING_SCOPE, key }, async (tx) => insertEntry(tx, account, 5))
      returned = outcome.replayed === false
    })
    await expect(attempt).rejects.toBeInstanceOf(IdempotencyStoreError)
    await expect(attempt).rejects.toMatchObject({ code: IdempotencyErrorCode.STORE_FAILED, sqlState: 'P0001' })
    expect(returned).toBe(true) // withIdempotency returned before its store had run
    expect([await countEntries(one.db, account), await countKeys(one.db, key)]).toEqual([0, 0])
    expect(await serverTransaction(one.db)).toBeNull() // the connection is usable and outside any transaction
  })

  it('fails the next statement instead, and a COMMIT after the caller caught that error', async () => {
    const account = randomUUID()
    const key = randomUUID()
    let next: unknown
    const attempt = one.db.transaction().execute(async (tx) => {
      await withIdempotency(tx, { scope: FAILING_SCOPE, key }, async (tx) => insertEntry(tx, account, 5))
      next = await insertEntry(tx, account, 7).catch((error: unknown) => error)
    })
    await expect(attempt).rejects.toMatchObject({ code: IdempotencyErrorCode.STORE_FAILED })
    expect(next).toMatchObject({ code: IdempotencyErrorCode.STORE_FAILED })
    expect([await countEntries(one.db, account), await countKeys(one.db, key)]).toEqual([0, 0])
  })

  it('fails the COMMIT when a trigger discards the key row, on an optimized pool and a plain one', async () => {
    for (const db of [one.db, database.db]) {
      const account = randomUUID()
      const key = randomUUID()
      const attempt = deposit(db, DISCARDING_SCOPE, key, account)
      await expect(attempt).rejects.toMatchObject({ code: IdempotencyErrorCode.STORE_FAILED, sqlState: '22012' })
      await expect(attempt).rejects.toThrow('a trigger or rule on the key table discarded it')
      expect([await countEntries(database.db, account), await countKeys(database.db, key)]).toEqual([0, 0])
    }
  })

  it('is reported at COMMIT as a retryable store failure (not a concurrent twin) when a statement_timeout stops it', async () => {
    const attempt = one.db.transaction().execute(async (tx) => {
      await sql`set local statement_timeout = 100`.execute(tx)
      await withIdempotency(tx, { scope: SLOW_SCOPE, key: randomUUID() }, async () => 'done', { retryAfterSeconds: 7 })
    })
    await expect(attempt).rejects.toMatchObject({ code: IdempotencyErrorCode.STORE_FAILED, sqlState: '57014', retryable: true })
  })

  it('keeps its own typed error when a later call of the transaction sends it', async () => {
    const own = oneConnection()
    try {
      await deposit(own.db, 'batching', randomUUID(), randomUUID())
      const { rows } = await sql<{ name: string }>`select name from pg_prepared_statements where name like 'pg_idempotency_complete%'`.execute(own.db)
      await sql.raw(`deallocate ${rows[0]!.name}`).execute(own.db)
      const attempt = own.db.transaction().execute(async (tx) => {
        await withIdempotency(tx, { scope: 'batching', key: randomUUID() }, async () => 'first')
        await withIdempotency(tx, { scope: 'batching', key: randomUUID() }, async () => 'second')
      })
      await expect(attempt).rejects.toMatchObject({ code: IdempotencyErrorCode.STORE_FAILED, sqlState: '26000', retryable: true })
    } finally {
      await own.db.destroy()
    }
  })

  it('at the COMMIT of the first of two racers lets the waiting twin run fn and store its own result', async () => {
    const db = connect<LedgerDatabase>(database.url, 2, { optimized: true })
    const locks = await lockWatcher(database.url)
    try {
      const account = randomUUID()
      const key = randomUUID()
      const holding = new Latch()
      const race = (result: string, hold: boolean) =>
        db.transaction().execute((tx) =>
          withIdempotency(tx, { scope: 'batching', key }, async (tx) => {
            await insertEntry(tx, account, 5)
            if (hold) await holding.hold()
            return result
          }),
        )
      const first = race(REFUSED_RESULT, true).catch((error: unknown) => error)
      await holding.entered
      const twin = race('stored', false)
      await locks.untilWaiting(1)
      holding.release()
      expect(await first).toMatchObject({ code: IdempotencyErrorCode.STORE_FAILED, sqlState: 'P0001' })
      expect(await twin).toMatchObject({ replayed: false, value: 'stored' })
      expect([await countEntries(database.db, account), await countKeys(database.db, key)]).toEqual([1, 1])
    } finally {
      await Promise.all([db.destroy(), locks.close()])
    }
  })

  describe('still in flight when COMMIT is issued (a statement the caller did not await sent it ahead)', () => {
    /**
     * fn writes and leaves a savepoint; the caller issues `statement` without awaiting it, and
     * returns once the held store has gone to node-postgres ahead of it, so kysely issues COMMIT
     * (or, when the caller throws, ROLLBACK) before the server has answered the store.
     */
    async function commitWhileStoreInFlight(
      own: Pick<OneConnection, 'db' | 'untilSent'>,
      scope: string,
      statement: (tx: Transaction<LedgerDatabase>) => Promise<unknown>,
      end: 'commit' | 'roll back' = 'commit',
    ) {
      const account = randomUUID()
      const key = randomUUID()
      const attempt = own.db.transaction().execute(async (tx) => {
        await withIdempotency(tx, { scope, key }, async (tx) => {
          await insertEntry(tx, account, 5)
          await sql`savepoint after_writes`.execute(tx)
          return 'done'
        })
        const sent = own.untilSent('batch')
        statement(tx).catch(() => undefined)
        await sent
        if (end === 'roll back') throw new Error('the caller rolls back')
      })
      return { account, key, attempt }
    }

    it('fails that COMMIT with the typed error, and nothing of the handler is kept', async () => {
      const { account, key, attempt } = await commitWhileStoreInFlight(one, FAILING_SCOPE, (tx) => insertEntry(tx, randomUUID(), 7))
      await expect(attempt).rejects.toMatchObject({ code: IdempotencyErrorCode.STORE_FAILED, sqlState: 'P0001' })
      expect([await countEntries(one.db, account), await countKeys(one.db, key)]).toEqual([0, 0])
      expect(await serverTransaction(one.db)).toBeNull()
    })

    it("fails that COMMIT even when the statement was a rollback to fn's savepoint, which undid the failure", async () => {
      const { account, key, attempt } = await commitWhileStoreInFlight(one, FAILING_SCOPE, (tx) => sql`rollback to savepoint after_writes`.execute(tx))
      await expect(attempt).rejects.toMatchObject({ code: IdempotencyErrorCode.STORE_FAILED, sqlState: 'P0001' })
      expect([await countEntries(one.db, account), await countKeys(one.db, key)]).toEqual([0, 0])
    })

    it('commits once the store succeeded', async () => {
      const { account, key, attempt } = await commitWhileStoreInFlight(one, 'batching', (tx) => insertEntry(tx, randomUUID(), 7))
      await attempt
      expect([await countEntries(one.db, account), await countKeys(one.db, key)]).toEqual([1, 1])
    })

    it.each(['commit', 'roll back'] as const)('does not reach the next transaction on the same connection (the caller ends it: %s)', async (end) => {
      // Both transactions on one reserved connection: it does not go back to the pool in between.
      await one.db.connection().execute(async (db) => {
        const { attempt } = await commitWhileStoreInFlight({ db, untilSent: one.untilSent }, FAILING_SCOPE, (tx) => insertEntry(tx, randomUUID(), 7), end)
        await attempt.catch(() => undefined)
        const account = randomUUID()
        const key = randomUUID()
        expect((await deposit(db, 'batching', key, account)).replayed).toBe(false)
        expect([await countEntries(db, account), await countKeys(db, key)]).toEqual([1, 1])
      })
    })
  })

  it('fails inside withIdempotency with a savepoint, which lets the caller go on', async () => {
    const account = randomUUID()
    const key = randomUUID()
    await one.db.transaction().execute(async (tx) => {
      const attempt = withIdempotency(tx, { scope: FAILING_SCOPE, key }, async (tx) => insertEntry(tx, account, 5), { savepoint: true })
      await expect(attempt).rejects.toMatchObject({ code: IdempotencyErrorCode.STORE_FAILED })
      await insertEntry(tx, account, 9)
    })
    const amounts = await one.db.selectFrom('ledger').select('amount').where('account', '=', account).execute()
    expect(amounts).toEqual([{ amount: 9 }])
    expect(await countKeys(one.db, key)).toBe(0)
  })
})

it('keeps nothing when the connection dies between the handler and COMMIT', async () => {
  const account = randomUUID()
  const key = randomUUID()
  const attempt = one.db.transaction().execute(async (tx) => {
    await withIdempotency(tx, { scope: 'batching', key }, async (tx) => insertEntry(tx, account, 5))
    const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(tx)
    await sql`select pg_terminate_backend(${rows[0]!.pid})`.execute(database.db)
  })
  await expect(attempt).rejects.toThrow()
  expect([await countEntries(database.db, account), await countKeys(database.db, key)]).toEqual([0, 0])
  // The pool replaces the dead connection, and the key can be used.
  expect((await deposit(one.db, 'batching', key, account)).replayed).toBe(false)
})

describe('BEGIN held back', () => {
  it.each<IsolationLevel>(['read committed', 'repeatable read', 'serializable'])('%s: the claim runs at the isolation level asked for', async (isolation) => {
    const level = await one.db
      .transaction()
      .setIsolationLevel(isolation)
      .execute((tx) =>
        withIdempotency(tx, randomUUID(), async (tx) => {
          const { rows } = await sql<{ level: string }>`select current_setting('transaction_isolation') as level`.execute(tx)
          return rows[0]!.level
        }),
      )
    expect(level.value).toBe(isolation)
  })

  it('is never sent for a transaction that rolls back before its first statement', async () => {
    one.sent.length = 0
    await expect(
      one.db.transaction().execute(async () => {
        throw new Error('before any statement')
      }),
    ).rejects.toThrow('before any statement')
    expect(one.sent).toEqual([])
    expect(await serverTransaction(one.db)).toBeNull()
  })

  it('is forgotten when its connection goes back to the pool unused', async () => {
    // As a driver whose caller neither commits nor rolls back would leave it: kysely never does.
    const driver = one.dialect.createDriver()
    await driver.init()
    const first = await driver.acquireConnection()
    await driver.beginTransaction(first, {})
    await driver.releaseConnection(first)
    const again = await driver.acquireConnection()
    try {
      expect(again).toBe(first) // the pool's one connection, and its state as the dialect keeps it
      const { rows } = await again.executeQuery<{ xact: string | null }>(
        CompiledQuery.raw('select case when xact_start = query_start then null else xact_start::text end as xact from pg_stat_activity where pid = pg_backend_pid()'),
      )
      expect(rows[0]!.xact).toBeNull()
    } finally {
      await driver.releaseConnection(again)
    }
  })

  it('goes ahead of any other first statement, which then runs inside the transaction', async () => {
    const inside = await one.db.transaction().execute((tx) => serverTransaction(tx))
    expect(inside).not.toBeNull()
  })
})

describe('the connection under it', () => {
  it('fails the call with a typed error when a type parser throws on the claim, and stays usable', async () => {
    let armed = false
    const types = {
      getTypeParser: (oid: number, format?: string) => {
        const parse = pg.types.getTypeParser(oid, format as 'text')
        return (text: string) => {
          if (armed && oid === 25) throw new Error('the text parser failed')
          return parse(text)
        }
      },
    }
    const own = oneConnection({ types } as pg.PoolConfig)
    try {
      const account = randomUUID()
      await deposit(own.db, 'batching', randomUUID(), account)
      const key = randomUUID()
      await deposit(own.db, 'batching', key, account)
      armed = true
      await expect(deposit(own.db, 'batching', key, account)).rejects.toMatchObject({ code: IdempotencyErrorCode.STORE_FAILED })
      armed = false
      expect((await deposit(own.db, 'batching', key, account)).replayed).toBe(true)
    } finally {
      await own.db.destroy()
    }
  })

  it('reports a COMMIT that timed out on the client as such, not as a failed store', async () => {
    const own = oneConnection({ query_timeout: 200 })
    try {
      await deposit(own.db, 'batching', randomUUID(), randomUUID())
      const key = randomUUID()
      const error = await deposit(own.db, SLOW_SCOPE, key, randomUUID()).catch((error: unknown) => error)
      // The server may still commit it: the outcome is unknown, as for any COMMIT that times out.
      expect(error).toBeInstanceOf(Error)
      expect(error).not.toBeInstanceOf(IdempotencyError)
      expect((error as Error).message).toBe('Query read timeout')
    } finally {
      await own.db.destroy()
    }
  })

  it('recovers when the server forgot one of the statements (DEALLOCATE name)', async () => {
    const own = oneConnection()
    try {
      const call = () => deposit(own.db, 'batching', randomUUID(), randomUUID())
      await call()
      const { rows } = await sql<{ name: string }>`select name from pg_prepared_statements where name like 'pg_idempotency_claim%'`.execute(own.db)
      await sql.raw(`deallocate ${rows[0]!.name}`).execute(own.db)
      await expect(call()).rejects.toMatchObject({ code: IdempotencyErrorCode.STORE_FAILED, sqlState: '26000', retryable: true })
      for (let attempt = 0; attempt < 3; attempt++) expect((await call()).replayed).toBe(false)
    } finally {
      await own.db.destroy()
    }
  })

  it('recovers when a migration changed what the prepared claim returns', async () => {
    const schema = 'idem_batching_changed'
    await migrate(database.db, { schema })
    const own = oneConnection()
    try {
      const call = () => own.db.transaction().execute((tx) => withIdempotency(tx, randomUUID(), async () => 'done', { schema }))
      await call()
      // The same function with another result column type, as a careless migration could leave it.
      const { rows } = await sql<{ definition: string }>`
        select pg_get_functiondef(${`${schema}.claim_idempotency_key`}::regproc) as definition`.execute(database.db)
      await sql.raw(`drop function ${schema}.claim_idempotency_key`).execute(database.db)
      await sql.raw(rows[0]!.definition.replace('OUT status text', 'OUT status character varying')).execute(database.db)
      await expect(call()).rejects.toMatchObject({ code: IdempotencyErrorCode.STORE_FAILED, sqlState: '0A000', retryable: true })
      expect(await call()).toMatchObject({ replayed: false, value: 'done' })
    } finally {
      await own.db.destroy()
    }
  })

  // node-postgres has a pipeline mode from 8.23 on; before, the option does nothing.
  const hasPipelineMode = (new pg.Client({ pipeline: true } as pg.ClientConfig) as unknown as { pipeline?: boolean }).pipeline === true
  it.skipIf(!hasPipelineMode)('leaves a pool in node-postgres pipeline mode as it is', async () => {
    const own = oneConnection({ pipeline: true } as pg.PoolConfig)
    try {
      const key = randomUUID()
      const account = randomUUID()
      expect((await deposit(own.db, 'batching', key, account)).replayed).toBe(false)
      expect((await deposit(own.db, 'batching', key, account)).replayed).toBe(true)
      expect(own.sent).not.toContain('batch')
    } finally {
      await own.db.destroy()
    }
  })

  it('leaves plain node-postgres code on the same pool as it is', async () => {
    await sql`create table if not exists queued (label text)`.execute(database.db)
    const client = await one.pool.connect()
    try {
      const label = randomUUID()
      await client.query('begin')
      await client.query('insert into queued values ($1)', [label])
      await client.query('rollback')
      const { rows } = await client.query('select count(*)::int as n from queued where label = $1', [label])
      expect(rows[0].n).toBe(0)
    } finally {
      client.release()
    }
  })

  it('hands node-postgres one message at a time, also when the caller does not wait for its statements', async () => {
    const own = oneConnection()
    try {
      const account = randomUUID()
      const key = randomUUID()
      // The first commits; the second's store fails, so it keeps nothing.
      for (const scope of ['batching', FAILING_SCOPE]) {
        await own.db
          .transaction()
          .execute(async (tx) => {
            await withIdempotency(tx, { scope, key: scope === FAILING_SCOPE ? randomUUID() : key }, async (tx) => {
              await Promise.all([insertEntry(tx, account, 1), insertEntry(tx, account, 2), sql`savepoint mid`.execute(tx), insertEntry(tx, account, 3)])
              return 'done'
            })
            // The held store goes out ahead of these, and they go one after the other. All settle
            // before the transaction ends: one still on its way through kysely would otherwise
            // reach the connection after the ROLLBACK, and autocommit, as on any kysely dialect.
            const settled = await Promise.allSettled([insertEntry(tx, account, 4), countEntries(tx, account), insertEntry(tx, account, 5)])
            for (const result of settled) if (result.status === 'rejected') throw result.reason
          })
          .catch(() => undefined)
      }
      expect(own.sent.length).toBeGreaterThan(8)
      expect(own.queued.count).toBe(0)
      expect([await countEntries(own.db, account), await countKeys(own.db, key)]).toEqual([5, 1])
    } finally {
      await own.db.destroy()
    }
  })
})
