// Transactions held open by the test, each holding one lock that a request under fault will
// meet: the key itself, the key table (the store waits), or the commit gate (the COMMIT waits).
import { sql, type Kysely, type Transaction } from 'kysely'
import { withIdempotency } from '../../../src/index.ts'
import { Latch } from '../../support/concurrency.ts'

export interface Held {
  /** Ends the holding transaction (rolled back) and resolves once it has. */
  release(): Promise<void>
}

/** Opens a transaction, runs `take` in it, and keeps it open until `release()`. */
export async function hold(db: Kysely<any>, take: (tx: Transaction<any>) => Promise<unknown>): Promise<Held> {
  const latch = new Latch()
  const done = db
    .transaction()
    .execute(async (tx) => {
      await take(tx)
      await latch.hold()
      throw new Released()
    })
    .catch((error: unknown) => {
      if (!(error instanceof Released)) throw error
    })
  await Promise.race([latch.entered, done])
  return {
    release: async () => {
      latch.release()
      await done
    },
  }
}

class Released extends Error {}

/** Holds `key` as a first call would, inside its fn; the holder rolls back on release. */
export async function holdKey(db: Kysely<any>, scope: string, key: string): Promise<Held> {
  const inside = new Latch()
  const done = db
    .transaction()
    .execute((tx) =>
      withIdempotency(tx, { scope, key, request: { key } }, async () => {
        await inside.hold()
        throw new Released()
      }),
    )
    .then(
      () => {},
      (error: unknown) => {
        if (!(error instanceof Released)) throw error
      },
    )
  await Promise.race([inside.entered, done])
  return {
    release: async () => {
      inside.release()
      await done
    },
  }
}

/** Holds a SHARE lock on the key table: the claim (a SELECT) passes, the store (an INSERT) waits. */
export function holdKeyTable(db: Kysely<any>): Promise<Held> {
  return hold(db, (tx) => sql`lock table idempotency.idempotency_keys in share mode`.execute(tx))
}

// An advisory lock id of the suite's own; the claim's locks are hashes, a clash costs a wait only.
const COMMIT_GATE = 730_001

/**
 * A deferred constraint trigger on the business table that takes the commit gate's lock
 * (shared) at COMMIT, before the commit record is written: while the test holds the gate, every
 * COMMIT of a transaction that wrote a business row waits in the server's lock table.
 */
export async function installCommitGate(db: Kysely<any>): Promise<void> {
  await sql`create or replace function fault_commit_gate() returns trigger language plpgsql as $$
    begin perform pg_advisory_xact_lock_shared(${sql.lit(COMMIT_GATE)}); return null; end $$`.execute(db)
  await sql`drop trigger if exists fault_effects_commit_gate on fault_effects`.execute(db)
  await sql`create constraint trigger fault_effects_commit_gate after insert on fault_effects
    deferrable initially deferred for each row execute function fault_commit_gate()`.execute(db)
}

/** Waits, inside `tx`, until the commit gate is open (a statement a timeout can end). */
export async function passCommitGate(tx: Transaction<any>): Promise<void> {
  await sql`select pg_advisory_xact_lock_shared(${sql.lit(COMMIT_GATE)})`.execute(tx)
}

/** Closes the commit gate until `release()`. */
export function holdCommitGate(db: Kysely<any>): Promise<Held> {
  return hold(db, (tx) => sql`select pg_advisory_xact_lock(${sql.lit(COMMIT_GATE)})`.execute(tx))
}
