import type { Kysely, Transaction } from 'kysely'
import { describe, expectTypeOf, it } from 'vitest'
import { withIdempotency, type IdempotencyOutcome } from '../src/index.ts'

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
})
