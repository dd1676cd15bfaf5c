import { AsyncLocalStorage } from 'node:async_hooks'
import { IdempotencyUsageError } from './errors.ts'
import type { ValidKey } from './key.ts'

interface ActiveClaim {
  tx: object
  scope: string
  key: string
  customerId: string | null
  /** When this claim was first seen (set once the claim returns): part of derived event ids. */
  firstSeenAt: Date | undefined
  /** How many events emit() has written for this claim so far. */
  emitted: number
  /** The call took a savepoint before its fn (`savepoint: true`). */
  savepoint: boolean
}

/** The innermost withIdempotency call on `tx` whose fn is running here, if any. */
export function currentClaim(tx: object): ActiveClaim | undefined {
  return (enclosing.getStore() ?? []).findLast((claim) => claim.tx === tx)
}

/** The customer of the innermost enclosing call on `tx` that names one. */
export function currentCustomer(tx: object): string | null {
  return (enclosing.getStore() ?? []).findLast((claim) => claim.tx === tx && claim.customerId !== null)?.customerId ?? null
}

// The transactions a key was claimed in: their COMMIT also commits (or, lost, may commit) a key.
const claimedIn = new WeakSet<object>()

/** Whether a withIdempotency call on `tx` got as far as claiming its key. */
export function hasClaimedKey(tx: object): boolean {
  return claimedIn.has(tx)
}

// The withIdempotency calls whose fn the current code runs inside, outermost first.
const enclosing = new AsyncLocalStorage<readonly ActiveClaim[]>()
// How many calls are in flight on each transaction, nested or not.
const inFlight = new WeakMap<object, number>()

/**
 * Tracks one withIdempotency call on `tx`. Nested calls (from inside `fn`) are fine and get
 * their own savepoint depth; the same key nested in itself, or two calls running side by side on
 * one transaction, would make savepoints and rows interleave, so both are refused.
 */
export class ClaimContext {
  /** 0 for a call made outside any other call on the same transaction. */
  readonly depth: number
  /** The depth of the innermost enclosing call on the same transaction that took a savepoint. */
  readonly enclosingSavepoint: number | undefined
  readonly #tx: object
  readonly #stack: readonly ActiveClaim[]
  readonly #claim: ActiveClaim

  constructor(tx: object, key: ValidKey, savepoint: boolean) {
    const stack = enclosing.getStore() ?? []
    const mine = stack.filter((claim) => claim.tx === tx)
    if (mine.some((claim) => claim.scope === key.scope && claim.key === key.key)) {
      throw new IdempotencyUsageError('withIdempotency was called with the same key inside its own fn; that would claim the key twice.')
    }
    if ((inFlight.get(tx) ?? 0) > mine.length) {
      throw new IdempotencyUsageError(
        'Another withIdempotency call is running on this transaction. Calls on one transaction must be sequential (or nested in fn), never concurrent.',
      )
    }
    this.depth = mine.length
    const withSavepoint = mine.findLastIndex((claim) => claim.savepoint)
    this.enclosingSavepoint = withSavepoint === -1 ? undefined : withSavepoint
    this.#tx = tx
    this.#stack = stack
    this.#claim = { tx, scope: key.scope, key: key.key, customerId: key.customerId, firstSeenAt: undefined, emitted: 0, savepoint }
  }

  /** Records when the claim was first seen, for event ids derived from it. */
  claimed(firstSeenAt: Date): void {
    this.#claim.firstSeenAt = firstSeenAt
    claimedIn.add(this.#tx)
  }

  /** Marks the call in flight until `work` settles, and runs `fn` inside as the enclosing call. */
  async track<T>(work: (runInside: <R>(fn: () => R) => R) => Promise<T>): Promise<T> {
    inFlight.set(this.#tx, (inFlight.get(this.#tx) ?? 0) + 1)
    const inner = [...this.#stack, this.#claim]
    try {
      return await work((fn) => enclosing.run(inner, fn))
    } finally {
      inFlight.set(this.#tx, (inFlight.get(this.#tx) ?? 1) - 1)
    }
  }
}
