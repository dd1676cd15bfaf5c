// Order per ordering key rests on one lock per key: emit() holds it shared from before its event
// gets an id until its transaction ends; the relay takes it exclusively, for a moment and without
// waiting, to learn that no event of the key is in flight (see relay-horizon.ts).

/** The lock of one ordering key, as text for hashtextextended(). */
export function orderingKeyLock(schema: string, orderingKey: string): string {
  return `${orderingKeyLockPrefix(schema)}${orderingKey}`
}

export function orderingKeyLockPrefix(schema: string): string {
  return `pg-idempotency:outbox:${schema}:key:`
}

/**
 * The lock a transaction takes instead once it has emitted for many keys: advisory locks live in
 * the server's shared lock table (about max_locks_per_transaction per connection), so a batch
 * that emits for thousands of keys holds this one lock for the rest. While it is held, the relay
 * delivers no keyed event.
 */
export function manyKeysLock(schema: string): string {
  return `pg-idempotency:outbox:${schema}:many-keys`
}

export const KEYS_LOCKED_ONE_BY_ONE = 32

// The distinct keys each transaction has emitted for. Only a count for the switch to the shared
// lock: every emit takes its lock again (a savepoint rolled back releases the locks taken in it).
const keysByTransaction = new WeakMap<object, Set<string>>()

/** The locks emit() takes for an event of `orderingKey` in `tx`. */
export function locksForEmit(tx: object, schema: string, orderingKey: string | null): string[] {
  if (orderingKey === null) return []
  let keys = keysByTransaction.get(tx)
  if (!keys) keysByTransaction.set(tx, (keys = new Set()))
  if (keys.has(orderingKey) || keys.size < KEYS_LOCKED_ONE_BY_ONE) {
    keys.add(orderingKey)
    return [orderingKeyLock(schema, orderingKey)]
  }
  return [manyKeysLock(schema)]
}
