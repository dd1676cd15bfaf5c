// One node-postgres connection of an optimizePool pool: it sends the library's statements
// named, and in the same message as the transaction control next to them.
//
// - kysely's BEGIN is held back until the next statement. If that is the library's claim, both
//   go in one message; anything else is sent right after BEGIN, as usual.
// - The library's stored result (the default mode, without a savepoint) is held back until the
//   next statement. If that is kysely's COMMIT, both go in one message: should the store fail,
//   the server skips the COMMIT, and the COMMIT call rejects with the store's error. Anything
//   else is sent right after the store, and rejects with the store's error if the store failed.
// A store that went out ahead of another statement decides its transaction's COMMIT: issued
// before the server has answered the store, the COMMIT waits for that answer; after a failed
// store the transaction rolls back and the COMMIT rejects with the store's typed error (even
// when the caller rolled back to a savepoint of fn's, which would let the server commit), so a
// caller who catches the error cannot commit the handler's writes without their key.
//
// What is held, and what a store reports, belongs to one transaction (a fresh state at every
// COMMIT, ROLLBACK and release), so a store that fails late never reaches the next transaction
// on the connection. Whatever is held goes to node-postgres before the statement that follows
// it, in the same call, so statements reach the server in the order they were issued.
import { translateDatabaseError } from '../store/database-errors.ts'
import { SqlState, sqlStateOf } from '../store/sql-state.ts'
import { BatchError, sendBatch, type BatchClient, type BatchResult, type BatchStatement } from './batch-query.ts'
import { libraryStatementOf, storeCallOf, STATEMENT_NAME_PREFIX, type LibraryStatement } from './library-statements.ts'

/** The part of a node-postgres client this uses. */
export interface BatchingClient extends BatchClient {
  query(...args: unknown[]): unknown
}

type Send = (...args: unknown[]) => unknown

// The BEGIN texts kysely sends (PostgresDriver.beginTransaction). One with an access mode is sent
// as it comes: READ WRITE can fail (on a standby), and what follows must not run outside it.
const KYSELY_BEGIN = /^(?:begin|start transaction isolation level (?:read uncommitted|read committed|repeatable read|serializable))$/
const COMMIT = 'commit'
const ROLLBACK = 'rollback'

interface HeldStore {
  statement: LibraryStatement
  text: string
  values: readonly unknown[]
}

/** What this connection's current transaction has held back or sent of the library's. */
interface TransactionState {
  /** kysely's BEGIN, not sent yet. */
  begin?: string
  /** The stored result, not sent yet. */
  store?: HeldStore
  /** The stored result went out ahead of another statement: settles with its typed error, or undefined once it succeeded. */
  storeSent?: Promise<Error | undefined>
}

export class TransactionBatcher {
  readonly #client: BatchingClient
  readonly #send: Send
  readonly #holding: boolean
  #tx: TransactionState = {}

  /**
   * @param send node-postgres's own `client.query`.
   * @param holding hold BEGIN and the store back to share a message; without it the library's
   *   statements are only named.
   */
  constructor(client: BatchingClient, send: Send, holding: boolean) {
    this.#client = client
    this.#send = send
    this.#holding = holding
  }

  /** Forgets what is held back: the connection went back to the pool. */
  reset(): void {
    this.#endTransaction()
  }

  query(args: unknown[]): unknown {
    const [text, values, callback] = args
    if (typeof text !== 'string' || typeof values === 'function' || callback !== undefined) return this.#afterHeld(args)
    const params = (values ?? []) as readonly unknown[]
    if (text === COMMIT) return this.#commit(args)
    if (text === ROLLBACK) return this.#rollback(args)
    const tx = this.#tx
    if (this.#holding && KYSELY_BEGIN.test(text) && params.length === 0 && tx.begin === undefined && tx.store === undefined) {
      tx.begin = text
      return Promise.resolve(resultOf('BEGIN'))
    }
    const statement = libraryStatementOf(text)
    if (statement === undefined) return this.#afterHeld(args)
    if (statement.travelsWith === 'begin' && tx.begin !== undefined) {
      const begin = tx.begin
      tx.begin = undefined
      return this.#batch([{ text: begin, values: [] }, { name: statement.name, text, values: params, rows: true }]).then(
        (results) => results[1],
        (error: BatchError) => {
          throw error.cause
        },
      )
    }
    if (this.#holding && statement.travelsWith === 'commit' && storeCallOf(params)?.mayWaitForCommit && tx.begin === undefined && tx.store === undefined) {
      tx.store = { statement, text, values: params }
      return Promise.resolve(resultOf('INSERT', 1))
    }
    return this.#afterHeld([text, params], statement)
  }

  /** Ends the current transaction's state and returns it; what it reports later stays with it. */
  #endTransaction(): TransactionState {
    const ended = this.#tx
    this.#tx = {}
    return ended
  }

  #commit(args: unknown[]): unknown {
    const tx = this.#tx
    if (tx.storeSent === undefined && tx.store === undefined) {
      const sent = this.#afterHeld(args) // a BEGIN held back goes first
      this.#endTransaction()
      return sent
    }
    this.#endTransaction()
    const commit = () => (tx.store === undefined ? this.#send(...args) : this.#commitWithStore(tx.store))
    if (tx.storeSent === undefined) return commit()
    // A store went out before this COMMIT, so it is answered first: wait for that answer, then
    // commit, or end the transaction as a failed one (a rollback to a savepoint of fn's may have
    // un-failed it on the server) and tell the caller why. kysely sends nothing else on this
    // connection before its COMMIT settles.
    return tx.storeSent.then((failure) => {
      if (failure === undefined) return commit()
      return Promise.resolve(this.#send(ROLLBACK)).then(
        () => Promise.reject(failure),
        () => Promise.reject(failure),
      )
    })
  }

  /** The held store and COMMIT in one message: a store the server refuses makes it skip the COMMIT. */
  #commitWithStore(store: HeldStore): Promise<BatchResult | undefined> {
    return this.#batch([
      { name: store.statement.name, text: store.text, values: store.values },
      { text: COMMIT, values: [] },
    ]).then(
      (results) => results[1],
      (error: BatchError) => {
        // The server refused the store and skipped the COMMIT. Any other failure (a lost
        // connection, a timeout) leaves the COMMIT's outcome unknown, as it would be unbatched.
        throw error.fromServer && error.completed === 0 ? storeError(error.cause, store.values) : error.cause
      },
    )
  }

  #rollback(args: unknown[]): unknown {
    const neverBegun = this.#endTransaction().begin !== undefined
    // BEGIN was never sent: there is nothing on the server to roll back.
    if (neverBegun) return Promise.resolve(resultOf('ROLLBACK'))
    return this.#send(...args)
  }

  /**
   * Sends what is held back, then `args` (through a batch of one when it is the library's
   * `statement`). A promise-style call rejects with the held statement's error if that failed;
   * a callback or a Submittable meets the failed transaction itself.
   */
  #afterHeld(args: unknown[], statement?: LibraryStatement): unknown {
    const held = this.#sendHeld()
    const sent = statement === undefined ? this.#send(...args) : this.#sendLibrary(statement, args[0] as string, args[1] as readonly unknown[])
    if (held === undefined || typeof (sent as PromiseLike<unknown> | undefined)?.then !== 'function') return sent
    return Promise.allSettled([held, sent]).then(([first, second]) => {
      if (first.status === 'rejected') throw first.reason
      if (second.status === 'rejected') throw second.reason
      return second.value
    })
  }

  /** Sends the held BEGIN or store on its own; undefined when nothing is held. */
  #sendHeld(): Promise<unknown> | undefined {
    const tx = this.#tx
    const { begin, store } = tx
    tx.begin = undefined
    tx.store = undefined
    // Never both: a store is held only once BEGIN has gone.
    let held: Promise<unknown>
    if (begin !== undefined) held = Promise.resolve(this.#send(begin))
    else if (store !== undefined) {
      held = this.#sendLibrary(store.statement, store.text, store.values).catch((error: unknown) => {
        throw storeError(error, store.values)
      })
      // Every store of the transaction counts: the first failure decides its COMMIT.
      const previous = tx.storeSent
      const outcome = held.then(
        () => undefined,
        (error: Error) => error,
      )
      tx.storeSent = previous === undefined ? outcome : Promise.all([previous, outcome]).then(([first, next]) => first ?? next)
    } else return undefined
    // Its failure also reaches the caller through the statement sent after it (or the COMMIT).
    held.catch(() => {})
    return held
  }

  #sendLibrary(statement: LibraryStatement, text: string, values: readonly unknown[]): Promise<BatchResult> {
    return this.#batch([{ name: statement.name, text, values, rows: true }]).then(
      (results) => results[0]!,
      (error: BatchError) => {
        throw error.cause
      },
    )
  }

  #batch(statements: BatchStatement[]): Promise<BatchResult[]> {
    return sendBatch(this.#send, this.#client, statements).catch((error: BatchError) => {
      this.#forgetIfServerForgot(error.cause)
      throw error
    })
  }

  // The server forgot a statement (DISCARD ALL, DEALLOCATE, a pooler) while node-postgres still
  // counts it as parsed, or a migration changed what one returns ("cached plan must not change
  // result type"). Each library statement is parsed again on its next use here, after a Close
  // in case the server still has it.
  #forgetIfServerForgot(error: unknown): void {
    const sqlState = sqlStateOf(error)
    if (sqlState !== SqlState.INVALID_SQL_STATEMENT_NAME && sqlState !== SqlState.FEATURE_NOT_SUPPORTED) return
    const parsed = this.#client.connection?.parsedStatements ?? {}
    for (const name of Object.keys(parsed)) if (name.startsWith(STATEMENT_NAME_PREFIX)) delete parsed[name]
  }
}

/** A store's failure as the library reports it, with its call's retryAfterSeconds. */
function storeError(error: unknown, values: readonly unknown[]): Error {
  return translateDatabaseError(error, storeCallOf(values)?.retryAfterSeconds ?? 1)
}

function resultOf(command: string, rowCount: number | null = null): BatchResult {
  return { command, rowCount, rows: [] }
}
