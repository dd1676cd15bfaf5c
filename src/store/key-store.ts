import type { SqlSession } from '../data/sql-session.ts'
import { preparedName, type Statement, type StatementValue } from '../data/statement.ts'
import type { ValidKey } from '../key.ts'
import { translateClaimError, translateDatabaseError } from './database-errors.ts'
import { quoteSchema } from './schema-name.ts'

/** What {@link KeyStore.claim} found. See `claim_idempotency_key` in sql/0001. */
export type ClaimOutcome = 'found' | 'busy' | 'new' | 'new_placeholder'

/** A stored row's outcome, as the claim returns it. */
export type StoredStatus = 'completed' | 'failed'

export interface ClaimRow {
  outcome: ClaimOutcome
  status: StoredStatus | null
  fingerprint: Buffer | null
  response: unknown
  created_at: Date
}

/**
 * The claim's row as the claim statement returns it: text columns only, decoded here. A pool's
 * result format (node-postgres's `binary: true`) or an app's own type parsers for bytea, json or
 * timestamptz would otherwise change what the library reads (a `binary: true` pool returned the
 * fingerprint as a garbled string and a wrong timestamp). Each column is named by one lower-case
 * word, which no column-name transform of an app's data layer (postgres.js `postgres.camel`,
 * Knex `postProcessResponse`) renames.
 */
interface ClaimText {
  outcome: ClaimOutcome
  status: StoredStatus | null
  /** hex */
  fingerprint: string | null
  /** the stored JSON text */
  response: string | null
  /** milliseconds since the epoch, truncated as node-postgres truncates a timestamptz */
  created: string
}

export interface CompletedKey {
  key: ValidKey
  fingerprint: Buffer
  status: StoredStatus
  responseJson: string
  ttlMs: number
  /** The claim inserted a placeholder (REPEATABLE READ, SERIALIZABLE): update it. */
  placeholder: boolean
  /**
   * A failed store fails the whole transaction (no savepoint of this call or an enclosing one to
   * return to), so a data layer that batches may send the store with the transaction's next
   * statement, at the latest with its COMMIT (`travelsWith: 'commit'`).
   */
  mayWaitForCommit: boolean
}

// One name per nesting depth: an outer call's rollback must reach its own savepoint, not one an
// inner call left behind (savepoints are not released, to save a round trip; a later call at the
// same depth shadows the earlier one, and ROLLBACK TO finds the innermost of a name).
const plain = (text: string): Statement => ({ text, values: [] })
const ABORT_TRANSACTION = plain(
  "do $$ begin raise exception 'pg-idempotency: withIdempotency failed after its fn ran; this transaction must roll back' using errcode = 'P0001'; end $$",
)
const savepointName = (depth: number) => `pg_idempotency_${depth}`
const SAVEPOINTS = Array.from({ length: 8 }, (_, depth) => plain(`savepoint ${savepointName(depth)}`))
const ROLLBACKS = Array.from({ length: 8 }, (_, depth) => plain(`rollback to savepoint ${savepointName(depth)}`))
const ROLLBACK = plain('rollback')
const BEGIN = plain('begin')

/** The statements that read and write the key table of one schema. */
export class KeyStore {
  readonly #claimSql: string
  readonly #insertSql: string
  readonly #updateSql: string
  readonly #claimName: string
  readonly #insertName: string

  constructor(schema: string) {
    const s = quoteSchema(schema)
    // The first statement of its transaction: a layer that batches sends it in BEGIN's message.
    this.#claimSql =
      `select outcome, status, encode(fingerprint, 'hex') as fingerprint, response::text as response, ` +
        `(extract(epoch from date_trunc('milliseconds', created_at)) * 1000)::int8::text as created ` +
        `from ${s}.claim_idempotency_key($1::text, $2::text, $3::bytea, $4::boolean, $5::int)`
    // The ttl runs from completion (this statement's start, by the database clock), so a long
    // transaction cannot commit a key that has already expired.
    // The server checks that the row was written: a trigger or rule that discards it makes this a
    // division by zero. Checked there rather than by the row count here, because on a
    // layer that batches the statement may travel with the COMMIT, which runs before the client
    // sees any count: the error makes the server skip it.
    this.#insertSql =
      `with stored as (insert into ${s}.idempotency_keys (scope, key, fingerprint, status, response, customer_id, completed_at, expires_at) ` +
        `values ($1::text, $2::text, $3::bytea, $4::text, $5::json, $6::uuid, statement_timestamp(), statement_timestamp() + $7::double precision * interval '1 millisecond') ` +
        `returning 1) select (1 / count(*)::int)::text as stored from stored`
    this.#claimName = preparedName('claim', this.#claimSql)
    this.#insertName = preparedName('complete_with_commit', this.#insertSql)
    // Not prepared: its WHERE would let a generic plan pick a sequential scan. It only runs under
    // REPEATABLE READ / SERIALIZABLE.
    // Counts its row itself: the seam returns rows, not a layer's idea of an affected-row count.
    this.#updateSql =
      `with updated as (update ${s}.idempotency_keys set fingerprint = $3::bytea, status = $4::text, response = $5::json, customer_id = $6::uuid, ` +
      `completed_at = statement_timestamp(), expires_at = statement_timestamp() + $7::double precision * interval '1 millisecond' ` +
      `where scope = $1::text and key = $2::text and status = 'claimed' returning 1) select count(*)::text as updated from updated`
  }

  /** Takes the key's advisory lock (waiting up to `waitTimeoutMs`, or not at all) and looks it up. */
  async claim(session: SqlSession, key: ValidKey, fingerprint: Buffer, wait: boolean, waitTimeoutMs: number, retryAfterSeconds: number): Promise<ClaimRow> {
    const statement: Statement = {
      text: this.#claimSql,
      values: [key.scope, key.key, fingerprint, wait, waitTimeoutMs],
      name: this.#claimName,
      travelsWith: 'begin',
    }
    let row: ClaimText
    try {
      const rows = await session.run(statement)
      row = rows[0] as unknown as ClaimText
    } catch (error) {
      throw translateClaimError(error, retryAfterSeconds)
    }
    return {
      outcome: row.outcome,
      status: row.status,
      fingerprint: row.fingerprint === null ? null : Buffer.from(row.fingerprint, 'hex'),
      response: row.response === null ? null : JSON.parse(row.response),
      created_at: new Date(Number(row.created)),
    }
  }

  /** Stores the outcome in the caller's transaction. */
  async complete(session: SqlSession, done: CompletedKey, retryAfterSeconds: number): Promise<void> {
    const { key } = done
    const values: StatementValue[] = [key.scope, key.key, done.fingerprint, done.status, done.responseJson, key.customerId, done.ttlMs]
    if (!done.placeholder) {
      const statement: Statement = {
        text: this.#insertSql,
        values,
        name: this.#insertName,
        ...(done.mayWaitForCommit ? { travelsWith: 'commit', deferredError: (error: unknown) => translateDatabaseError(error, retryAfterSeconds) } : {}),
      }
      await run(session, statement, retryAfterSeconds)
      return
    }
    const rows = await run(session, { text: this.#updateSql, values }, retryAfterSeconds)
    if (rows[0]?.updated !== '1') {
      // Only a handler that deleted the placeholder itself gets here.
      throw translateDatabaseError(new Error('The idempotency key placeholder disappeared before the result was stored.'), retryAfterSeconds)
    }
  }

  async savepoint(session: SqlSession, depth: number): Promise<void> {
    await run(session, SAVEPOINTS[depth] ?? plain(`savepoint ${savepointName(depth)}`), 0)
  }

  /**
   * Makes the transaction fail so that no savepoint taken after `fn` started can un-fail it:
   * back to the savepoint of an enclosing call at `savepointDepth` (whose own undo then decides),
   * or, without one, the whole transaction rolled back and a failed one begun in its place (so
   * the caller's later statements cannot run outside a transaction); then an error. After this,
   * COMMIT rolls back. Used when `fn` has written and its call has no savepoint, so a caller who
   * swallows the error, or rolls back to a savepoint `fn` left behind, cannot commit `fn`'s
   * writes without their key.
   */
  async failTransaction(session: SqlSession, savepointDepth: number | undefined): Promise<void> {
    if (savepointDepth === undefined) {
      await run(session, ROLLBACK, 0)
      await run(session, BEGIN, 0)
    } else {
      await this.rollbackToSavepoint(session, savepointDepth)
    }
    await run(session, ABORT_TRANSACTION, 0)
  }

  async rollbackToSavepoint(session: SqlSession, depth: number): Promise<void> {
    await run(session, ROLLBACKS[depth] ?? plain(`rollback to savepoint ${savepointName(depth)}`), 0)
  }
}

async function run(session: SqlSession, statement: Statement, retryAfterSeconds: number) {
  try {
    return await session.run(statement)
  } catch (error) {
    throw translateDatabaseError(error, retryAfterSeconds)
  }
}

const stores = new Map<string, KeyStore>()

/** The store of `schema`, built once per schema name. */
export function keyStore(schema: string): KeyStore {
  let store = stores.get(schema)
  if (store === undefined) {
    store = new KeyStore(schema)
    stores.set(schema, store)
  }
  return store
}
