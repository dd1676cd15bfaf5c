// The library's transaction-level functions for one data layer, typed with its own transaction
// type: what every layer's entry point exports beside its database(). kysely's entry point writes
// its own, with the signatures the package root has always had.
import { createCustomerIn, type CreateCustomerInput } from '../customers/create-customer.ts'
import type { Customer } from '../customers/customer.ts'
import { findCustomerIn, resolveCustomerIn, type FindCustomerInput } from '../customers/find-customer.ts'
import type { IdempotencyKeyInput } from '../key.ts'
import type { IdempotencyOptions } from '../options.ts'
import { emitIn, type EmitOptions } from '../outbox/emit.ts'
import { withInboxIn, type InboxMessage, type InboxOutcome } from '../outbox/inbox.ts'
import { withIdempotencyIn, type IdempotencyOutcome } from '../with-idempotency.ts'
import { isIdempotencyDatabase, type IdempotencyDatabase } from './database.ts'
import type { SqlSession } from './sql-session.ts'

/** Binds the transaction-level functions to a layer whose transactions are `Base`s. */
export function transactionFunctions<Base extends object>(sessionOf: (tx: Base) => SqlSession<Base>) {
  // The session's transaction is `tx` itself, so `fn` gets back exactly the type it was given.
  const session = <Tx extends Base>(tx: Tx) => sessionOf(tx) as unknown as SqlSession<Tx>
  const source = (txOrDatabase: Base | IdempotencyDatabase<Base>) => (isIdempotencyDatabase(txOrDatabase) ? txOrDatabase : session(txOrDatabase))
  return {
    /**
     * Runs `fn` at most once per key, in the caller's transaction `tx`: the key's claim commits or
     * rolls back with `fn`'s writes, and a repeat returns the stored value without running `fn`.
     * Anything that is not an open transaction of the layer is refused (`IDEMPOTENCY_USAGE`)
     * before any statement runs. See docs/with-idempotency.md.
     */
    async withIdempotency<Tx extends Base, T>(
      tx: Tx,
      key: IdempotencyKeyInput,
      fn: (tx: Tx) => Promise<T> | T,
      options?: IdempotencyOptions<Tx>,
    ): Promise<IdempotencyOutcome<T>> {
      return withIdempotencyIn(session(tx), key, fn, options)
    },
    /** Applies a message exactly once, in the caller's transaction (docs/outbox.md). */
    async withInbox<Tx extends Base, T>(tx: Tx, message: InboxMessage, fn: (tx: Tx) => Promise<T> | T): Promise<InboxOutcome<T>> {
      return withInboxIn(session(tx), message, fn)
    },
    /** Writes an event in the caller's transaction; returns its id (docs/outbox.md). */
    async emit(tx: Base, topic: string, payload: unknown, options?: EmitOptions): Promise<string> {
      return emitIn(session(tx), topic, payload, options)
    },
    /** Creates the client's customer with this identifier, or returns the one that exists (docs/customers.md). */
    async createCustomer(tx: Base, input: CreateCustomerInput): Promise<{ customer: Customer; created: boolean }> {
      return createCustomerIn(session(tx), input)
    },
    /** The client's customer, in the caller's transaction or a short one of a database (docs/customers.md). */
    async findCustomer(txOrDatabase: Base | IdempotencyDatabase<Base>, input: FindCustomerInput): Promise<Customer | undefined> {
      return findCustomerIn(source(txOrDatabase), input)
    },
    /** The customer a request is made for; in the caller's transaction its row stays key-share locked (docs/customers.md). */
    async resolveCustomer(txOrDatabase: Base | IdempotencyDatabase<Base>, input: FindCustomerInput): Promise<Customer> {
      return resolveCustomerIn(source(txOrDatabase), input)
    },
  }
}
