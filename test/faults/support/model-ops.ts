// The operations of the randomized interleaving model: one request each, on one key, with
// whatever fault the dice chose. Each returns what the caller saw, for the checks that follow.
import { sql, type IsolationLevel, type Kysely, type Transaction } from 'kysely'
import { FinalFailure, withIdempotency, type IdempotencyOutcome, type WithIdempotencyOptions } from '../../../src/index.ts'
import { backendPid, terminate, untilGone } from './backends.ts'
import { writeEffect, type EffectValue } from './effects.ts'
import { runTransaction } from './transaction-runner.ts'

export const OPS = {
  call: 30, // a first call or a retry, whichever the key's state makes it
  'throw in fn': 8,
  'final failure': 4,
  'caller rollback': 8, // withIdempotency returned; the caller's transaction then rolls back
  'caller swallows and commits': 5, // fn threw; the caller catches it and commits anyway
  'kill in fn before its writes': 4,
  'kill in fn after its writes': 4,
  'kill before COMMIT': 4,
  "COMMIT's reply lost": 3, // the server commits, the client's connection drops (needs the proxy)
  'statement timeout in fn': 3,
  'idle timeout in fn': 2,
  'reject if busy': 6, // onConcurrent: 'reject'
  'short wait': 6, // waitTimeout: 20ms
} as const

export type Op = keyof typeof OPS
/** Ops after which a lost connection is expected. */
export const CONNECTION_FAULTS: readonly Op[] = ['kill in fn before its writes', 'kill in fn after its writes', 'kill before COMMIT', 'idle timeout in fn', "COMMIT's reply lost"]

export interface Request {
  op: Op
  key: string
  scope: string
  pool: string
  isolation: IsolationLevel
  savepoint: boolean
}

export interface Seen {
  request: Request
  /** withIdempotency's outcome, when it returned. */
  outcome?: IdempotencyOutcome<EffectValue>
  /** The transaction committed (execute resolved and nothing swallowed an error). */
  committed: boolean
  /** withIdempotency returned but the transaction's end failed: its COMMIT's outcome is unknown. */
  unknownOutcome: boolean
  /** What withIdempotency threw, if it threw, and whether that was fn's own error. */
  thrown?: unknown
  thrownByFn: boolean
  /** What the transaction rejected with. */
  rejection?: unknown
}

class CallerRollback extends Error {}
class FnThrows extends Error {}

/**
 * Runs one request; never rejects (every failure is in what it returns). `cutCommitReply` arms a
 * proxy in front of `db` to drop the next COMMIT's reply (support/cutting-proxy.ts): with several
 * requests at once, the next COMMIT may be another's, which is as good a fault.
 */
export async function runRequest(db: Kysely<any>, admin: Kysely<any>, request: Request, cutCommitReply?: () => void): Promise<Seen> {
  const { op, key, scope, isolation, savepoint } = request
  if (op === "COMMIT's reply lost") cutCommitReply?.()
  const seen: Seen = { request, committed: false, unknownOutcome: false, thrownByFn: false }
  const fnErrors = new Set<unknown>()
  const options: WithIdempotencyOptions<any> = { savepoint }
  if (op === 'reject if busy') options.onConcurrent = 'reject'
  if (op === 'short wait') options.waitTimeout = '20ms'
  let pid = 0

  const fn = async (tx: Transaction<any>): Promise<EffectValue> => {
    try {
      pid = await backendPid(tx)
      if (op === 'kill in fn before its writes') await terminate(admin, pid)
      if (op === 'idle timeout in fn') await sql`set local idle_in_transaction_session_timeout = '20ms'`.execute(tx)
      const value = await writeEffect(tx, key)
      if (op === 'kill in fn after its writes') await terminate(admin, pid)
      if (op === 'throw in fn' || op === 'caller swallows and commits') throw new FnThrows(`${op} (${key})`)
      if (op === 'final failure') throw new FinalFailure({ declined: value.run })
      if (op === 'statement timeout in fn') {
        await sql`set local statement_timeout = '10ms'`.execute(tx)
        await sql`select pg_sleep(5)`.execute(tx)
      }
      if (op === 'idle timeout in fn') await untilGone(admin, pid)
      return value
    } catch (error) {
      fnErrors.add(error)
      throw error
    }
  }

  let outcome: IdempotencyOutcome<EffectValue> | undefined
  let swallowed = false
  try {
    await runTransaction(db.transaction().setIsolationLevel(isolation), async (tx) => {
      try {
        outcome = await withIdempotency(tx, { scope, key, request: { key } }, fn, op === 'final failure' ? { ...options, savepoint: true } : options)
      } catch (error) {
        seen.thrown = error
        seen.thrownByFn = fnErrors.has(error)
        if (op === 'caller swallows and commits' && seen.thrownByFn) {
          swallowed = true
          return
        }
        throw error
      }
      // fn did not run on a replay: no statement is held back then, so asking is harmless.
      if (op === 'kill before COMMIT') await terminate(admin, pid || (await backendPid(tx)))
      if (op === 'caller rollback') throw new CallerRollback()
    })
    seen.outcome = outcome
    // A swallowed error without a savepoint left the transaction aborted: its COMMIT rolled back.
    seen.committed = !swallowed
  } catch (error) {
    if (!(error instanceof CallerRollback)) seen.rejection = error
    seen.outcome = outcome
    seen.unknownOutcome = outcome !== undefined && !(error instanceof CallerRollback)
  }
  return seen
}
