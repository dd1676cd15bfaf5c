import type { Kysely, Transaction } from 'kysely'
import { describe, expectTypeOf, it } from 'vitest'
import type pg from 'pg'
import { emit, emitIn, withIdempotency, withInbox, withInboxIn, type IdempotencyDatabase, type IdempotencyOutcome, type SqlSession } from '../src/index.ts'
import { createOutboxRelay, pruneDeliveredEvents } from '../src/outbox/index.ts'

interface Database {
  ledger: { id: number; amount: number; created_at: Date }
}

// These are compile-time checks: `npm test` runs `tsc --noEmit` over this file first.
describe('types', () => {
  it('takes a Transaction and refuses a plain Kysely instance at compile time', () => {
    const typecheckOnly = (db: Kysely<Database>, tx: Transaction<Database>) => {
      withIdempotency(tx, 'key', async () => 1)
      // @ts-expect-error a Kysely instance is not a transaction
      withIdempotency(db, 'key', async () => 1)
    }
    expectTypeOf(typecheckOnly).toBeFunction()
  })

  it('types the outcome as the JSON form of what fn returns', () => {
    type Row = Database['ledger']
    type Outcome = IdempotencyOutcome<{ status: number; body: Row }>
    expectTypeOf<Outcome['value']['body']['created_at']>().toEqualTypeOf<string>()
    expectTypeOf<Outcome['value']['body']['amount']>().toEqualTypeOf<number>()
    expectTypeOf<Outcome['replayed']>().toEqualTypeOf<boolean>()
    expectTypeOf<Outcome['firstSeenAt']>().toEqualTypeOf<Date>()
  })

  it('hands fn the same typed transaction', () => {
    const typecheckOnly = (tx: Transaction<Database>) =>
      withIdempotency(tx, 'key', async (inner) => {
        expectTypeOf(inner).toEqualTypeOf<Transaction<Database>>()
        return inner.selectFrom('ledger').select('amount').executeTakeFirstOrThrow()
      })
    expectTypeOf(typecheckOnly).returns.resolves.toEqualTypeOf<IdempotencyOutcome<{ amount: number }>>()
  })

  it('keeps emit and withInbox on a kysely Transaction, and their seam forms on any layer', () => {
    const typecheckOnly = (db: Kysely<Database>, tx: Transaction<Database>, session: SqlSession<pg.PoolClient>) => {
      emit(tx, 'topic', {})
      // @ts-expect-error a Kysely instance is not a transaction
      emit(db, 'topic', {})
      withInbox(tx, { source: 's', messageId: 'm' }, async (inner) => expectTypeOf(inner).toEqualTypeOf<Transaction<Database>>())
      // @ts-expect-error a Kysely instance is not a transaction
      withInbox(db, { source: 's', messageId: 'm' }, async () => 1)
      emitIn(session, 'topic', {})
      withInboxIn(session, { source: 's', messageId: 'm' }, async (client) => expectTypeOf(client).toEqualTypeOf<pg.PoolClient>())
    }
    expectTypeOf(typecheckOnly).toBeFunction()
  })

  it("lets the relay and pruning take a typed Kysely instance or any layer's database", () => {
    const typecheckOnly = (db: Kysely<Database>, database: IdempotencyDatabase<pg.PoolClient>) => {
      createOutboxRelay({ db, publishers: {} })
      createOutboxRelay({ db: database, publishers: {} })
      pruneDeliveredEvents(db)
      pruneDeliveredEvents(database)
      // @ts-expect-error a pool is neither
      pruneDeliveredEvents({} as pg.Pool)
    }
    expectTypeOf(typecheckOnly).toBeFunction()
  })
})
