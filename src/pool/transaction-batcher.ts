// One node-postgres connection of an optimizePool pool: it sends the library's statements
// named, and in the same message as the transaction control next to them.
//
// - kysely's BEGIN is held back until the next statement. If that is the library's claim, both
//   go in one message; anything else is sent right after BEGIN, as usual.
// - The library's stored result (the default mode, without a savepoint) is held back until the
//   next statement. If that is kysely's COMMIT, both go in one message: should the store fail,
//   the server skips the COMMIT, and the COMMIT call rejects with the store's error. Anything
//   else is sent right after the store, and rejects with the store's error if the store failed.
// A store that failed makes every later COMMIT of its transaction roll back and reject, so a
// caller who catches the error cannot commit the handler's writes without their key.
//
// Whatever is held goes to node-postgres before the statement that follows it, in the same call,
// so statements reach the server in the order they were issued.
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

export class TransactionBatcher {
  readonly #client: BatchingClient
  readonly #send: Send
  readonly #holding: boolean
  #begin: string | undefined
  #store: HeldStore | undefined
  /** The held store failed: this transaction must not commit. */
  #storeFailed: Error | undefined

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
    this.#begin = undefined
    this.#store = undefined
    this.#storeFailed = undefined
  }

  query(args: unknown[]): unknown {
    const [text, values, callback] = args
    if (typeof text !== 'string' || typeof values === 'function' || callback !== undefined) return this.#afterHeld(args)
    const params = (values ?? []) as readonly unknown[]
    if (text === COMMIT) return this.#commit(args)
    if (text === ROLLBACK) return this.#rollback(args)
    if (this.#holding && KYSELY_BEGIN.test(text) && params.length === 0 && this.#begin === undefined && this.#store === undefined) {
      this.#begin = text
      return Promise.resolve(resultOf('BEGIN'))
    }
    const statement = libraryStatementOf(text)
    if (statement === undefined) return this.#afterHeld(args)
    if (statement.travelsWith === 'begin' && this.#begin !== undefined) {
      const begin = this.#begin
      this.#begin = undefined
      return this.#batch([{ text: begin, values: [] }, { name: statement.name, text, values: params, rows: true }]).then(
        (results) => results[1],
        (error: BatchError) => {
          throw error.cause
        },
      )
    }
    if (this.#holding && statement.travelsWith === 'commit' && storeCallOf(params)?.mayWaitForCommit && this.#begin === undefined && this.#store === undefined) {
      this.#store = { statement, text, values: params }
      return Promise.resolve(resultOf('INSERT', 1))
    }
    return this.#afterHeld([text, params], statement)
  }

  #commit(args: unknown[]): unknown {
    if (this.#storeFailed !== undefined) {
      // End the transaction on the server as the COMMIT would have (it is aborted, so a COMMIT
      // would roll it back too), and tell the caller why.
      const failed = this.#storeFailed
      this.reset()
      return Promise.resolve(this.#send(ROLLBACK)).then(
        () => Promise.reject(failed),
        () => Promise.reject(failed),
      )
    }
    const store = this.#store
    if (store === undefined) return this.#afterHeld(args)
    this.#store = undefined
    return this.#batch([
      { name: store.statement.name, text: store.text, values: store.values },
      { text: COMMIT, values: [] },
    ]).then(
      (results) => results[1],
      (error: BatchError) => {
        // The server refused the store and skipped the COMMIT. Any other failure (a lost
        // connection, a timeout) leaves the COMMIT's outcome unknown, as it would be unbatched.
        throw error.fromServer && error.completed === 0 ? this.#failStore(error.cause, store.values) : error.cause
      },
    )
  }

  #rollback(args: unknown[]): unknown {
    const neverBegun = this.#begin !== undefined
    this.reset()
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
    const begin = this.#begin
    const store = this.#store
    this.#begin = undefined
    this.#store = undefined
    // Never both: a store is held only once BEGIN has gone.
    let held: Promise<unknown>
    if (begin !== undefined) held = Promise.resolve(this.#send(begin))
    else if (store !== undefined) {
      held = this.#sendLibrary(store.statement, store.text, store.values).catch((error: unknown) => {
        throw this.#failStore(error, store.values)
      })
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

  #failStore(error: unknown, values: readonly unknown[]): Error {
    const failure = translateDatabaseError(error, storeCallOf(values)?.retryAfterSeconds ?? 1)
    this.#storeFailed = failure
    return failure
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

function resultOf(command: string, rowCount: number | null = null): BatchResult {
  return { command, rowCount, rows: [] }
}
