// The business transactions the benchmark runs, and the four ways it runs each of them.
import { randomInt, randomUUID } from 'node:crypto'
import { sql, type Generated, type Kysely, type Transaction } from 'kysely'
import { withIdempotency, type optimizedDialect } from '../src/index.ts'

export interface BenchDatabase {
  accounts: { id: number; balance: string }
  ledger: { id: Generated<string>; account_id: number; amount: number; created_at: Generated<Date> }
}

type Db = Kysely<BenchDatabase>
type Tx = Transaction<BenchDatabase>

export const ACCOUNTS = 1000

/** One API request's body: which account, how much. It is also the idempotency fingerprint's input. */
export interface Deposit {
  account: number
  amount: number
}

export interface Scenario {
  name: string
  /** The idempotency scope, about as long as a real one (tenant and route). */
  scope: string
  /** The business statements, run inside the caller's transaction; returns the API response. */
  run(tx: Tx, deposit: Deposit): Promise<unknown>
}

export const scenarios: Scenario[] = [
  {
    name: 'single insert',
    scope: 'tenant_0001:POST /ledger',
    run: (tx, { account, amount }) => tx.insertInto('ledger').values({ account_id: account, amount }).returning('id').executeTakeFirstOrThrow(),
  },
  {
    name: 'three statements (lock account, insert ledger row, update balance)',
    scope: 'tenant_0001:POST /deposits',
    async run(tx, { account, amount }) {
      // The lock serialises deposits to the same account, as a real balance check would.
      await tx.selectFrom('accounts').select('balance').where('id', '=', account).forUpdate().executeTakeFirstOrThrow()
      const entry = await tx.insertInto('ledger').values({ account_id: account, amount }).returning('id').executeTakeFirstOrThrow()
      const updated = await tx
        .updateTable('accounts')
        .set((eb) => ({ balance: eb('balance', '+', String(amount)) }))
        .where('id', '=', account)
        .returning('balance')
        .executeTakeFirstOrThrow()
      return { entry: entry.id, balance: updated.balance }
    },
  },
]

export async function createTables(db: Db): Promise<void> {
  await sql`create table accounts (id integer primary key, balance bigint not null default 0)`.execute(db)
  await sql`create table ledger (id bigserial primary key, account_id integer not null, amount integer not null, created_at timestamptz not null default now())`.execute(db)
  await sql`insert into accounts (id) select generate_series(1, ${ACCOUNTS})`.execute(db)
}

export function randomDeposit(): Deposit {
  return { account: randomInt(1, ACCOUNTS + 1), amount: randomInt(1, 100) }
}

export type VariantName = 'bare' | 'first' | 'first, unbatched' | 'first, savepoint' | 'first, plain pool' | 'replay' | 'replay, unbatched' | 'replay, plain pool'
export const variantNames: VariantName[] = ['bare', 'first', 'first, unbatched', 'first, savepoint', 'first, plain pool', 'replay', 'replay, unbatched', 'replay, plain pool']

/**
 * The pool a variant runs on: `bare` on a plain one, as the user's own code runs, and so the
 * `plain pool` variants, whose library statements go unnamed and in round trips of their own, as
 * for a user who has not opted in (or cannot, behind an old PgBouncer); the `unbatched` ones on
 * an optimizedDialect with { batching: false }; the others on an optimizedDialect.
 */
export type PoolKind = 'plain' | 'unbatched' | 'optimized'

export function poolFor(name: VariantName): PoolKind {
  if (name === 'bare' || name.endsWith(', plain pool')) return 'plain'
  return name.endsWith(', unbatched') ? 'unbatched' : 'optimized'
}

/**
 * One request of a variant. `slot` is unique among the requests in flight at once (see
 * measure.ts), so replays never queue behind one another on the same key's advisory lock.
 */
export type Request = (slot: number) => Promise<void>

export interface StoredKey {
  key: string
  deposit: Deposit
}

export function variant(db: Db, scenario: Scenario, name: VariantName, replayKeys: StoredKey[]): Request {
  const { scope } = scenario
  switch (name) {
    case 'bare':
      return async () => {
        const deposit = randomDeposit()
        await db.transaction().execute((tx) => scenario.run(tx, deposit))
      }
    case 'first':
    case 'first, unbatched':
    case 'first, plain pool':
    case 'first, savepoint': {
      // The default claims without a savepoint; `savepoint: true` is what FinalFailure needs.
      const options = { savepoint: name === 'first, savepoint' }
      return async () => {
        const deposit = randomDeposit()
        const outcome = await db
          .transaction()
          .execute((tx) => withIdempotency(tx, { scope, key: randomUUID(), request: deposit }, (tx) => scenario.run(tx, deposit), options))
        if (outcome.replayed) throw new Error('a fresh key was replayed')
      }
    }
    case 'replay':
    case 'replay, unbatched':
    case 'replay, plain pool':
      return async (slot) => {
        const stored = replayKeys[slot % replayKeys.length]!
        const outcome = await db.transaction().execute((tx) =>
          withIdempotency(tx, { scope, key: stored.key, request: stored.deposit }, () => {
            throw new Error('a replay ran the business transaction')
          }),
        )
        if (!outcome.replayed) throw new Error('a stored key was not replayed')
      }
  }
}

/** First calls on `count` new keys, `concurrency` at a time, so the replay variant has keys to repeat. */
export async function storeKeys(db: Db, scenario: Scenario, count: number, concurrency: number): Promise<StoredKey[]> {
  const { scope } = scenario
  const keys = Array.from({ length: count }, () => ({ key: randomUUID(), deposit: randomDeposit() }))
  let next = 0
  const worker = async () => {
    for (let stored = keys[next++]; stored !== undefined; stored = keys[next++]) {
      const { key, deposit } = stored
      await db.transaction().execute((tx) => withIdempotency(tx, { scope, key, request: deposit }, (tx) => scenario.run(tx, deposit)))
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  return keys
}
