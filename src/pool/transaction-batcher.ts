// One node-postgres connection of an optimizePool pool: it sends the library's statements
// named, and in the same message as the transaction control next to them.
//
// - kysely's BEGIN is held back until the next statement. If that is the library's claim, both
//   go in one message; anything else is sent after BEGIN as usual.
// - The library's stored result (the default mode, without a savepoint) is held back until the
//   next statement. If that is kysely's COMMIT, both go in one message: should the store fail,
//   the server skips the COMMIT, and the COMMIT call rejects with the store's error. Anything
//   else is sent after the store, and rejects with the store's error if the store failed.
// A store that failed makes every later COMMIT of its transaction reject, so a caller who
// catches the error cannot commit the handler's writes without their key.
import { translateDatabaseError } from '../store/database-errors.ts'
import { SqlState, sqlStateOf } from '../store/sql-state.ts'
import { BatchError, sendBatch, type BatchClient, type BatchResult, type BatchStatement } from './batch-query.ts'
import { libraryStatementOf, STATEMENT_NAME_PREFIX, type LibraryStatement } from './library-statements.ts'

/** The part of a node-postgres client this uses. */
export interface BatchingClient extends BatchClient {
  query(...args: unknown[]): unknown
  connection?: { parsedStatements?: Record<string, string>; submittedNamedStatements?: Record<string, string> }
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
  #begin: string | undefined
  #store: HeldStore | undefined
  /** The held store failed: this transaction must not commit. */
  #storeFailed: Error | undefined

  readonly #batching: boolean

  constructor(client: BatchingClient, send: Send, batching: boolean) {
    this.#client = client
    this.#send = send
    this.#batching = batching
  }

  /** Forgets what is held back: the connection went back to the pool. */
  reset(): void {
    this.#begin = undefined
    this.#store = undefined
    this.#storeFailed = undefined
  }

  query(args: unknown[]): unknown {
    const [text, values, callback] = args
    if (!this.#batching || typeof text !== 'string' || typeof values === 'function' || callback !== undefined) return this.#afterHeld(args)
    const params = (values ?? []) as readonly unknown[]
    if (text === COMMIT) return this.#commit(args)
    if (text === ROLLBACK) return this.#rollback(args)
    if (KYSELY_BEGIN.test(text) && params.length === 0 && this.#begin === undefined && this.#store === undefined) {
      this.#begin = text
      return Promise.resolve(resultOf('BEGIN'))
    }
    const statement = libraryStatementOf(text)
    if (statement !== undefined && this.#store === undefined && this.#parsed(statement)) {
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
      if (statement.travelsWith === 'commit' && this.#begin === undefined) {
        this.#store = { statement, text, values: params }
        return Promise.resolve(resultOf('INSERT', 1))
      }
    }
    return this.#afterHeld(args)
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
        // Nothing completed: the store failed and the server skipped the COMMIT.
        throw error.completed === 0 ? this.#failStore(error.cause) : error.cause
      },
    )
  }

  #rollback(args: unknown[]): unknown {
    const neverBegun = this.#begin !== undefined
    this.reset()
    // BEGIN was never sent: there is nothing on the server to roll back.
    if (neverBegun) return Promise.resolve(resultOf('ROLLBACK'))
    return this.#sendNamed(args)
  }

  /** Sends what is held back, then `args`; `args` rejects with the held statement's error if it failed. */
  #afterHeld(args: unknown[]): unknown {
    const held = this.#sendHeld()
    if (held === undefined) return this.#sendNamed(args)
    const [first, values, callback] = args
    const onHeldFailure = (error: unknown) => {
      if (typeof first === 'object' && first !== null && typeof (first as { handleError?: unknown }).handleError === 'function') {
        ;(first as { handleError(error: unknown): void }).handleError(error)
      } else if (typeof values === 'function') (values as (error: unknown) => void)(error)
      else if (typeof callback === 'function') (callback as (error: unknown) => void)(error)
      else throw error
    }
    const sent = held.then(() => this.#sendNamed(args), onHeldFailure)
    // A callback or a Submittable hears of its result itself; node-postgres returns nothing or the Submittable.
    if (typeof first === 'object' && first !== null && typeof (first as { submit?: unknown }).submit === 'function') return first
    if (typeof values === 'function' || typeof callback === 'function') return undefined
    return sent
  }

  #sendHeld(): Promise<void> | undefined {
    const begin = this.#begin
    const store = this.#store
    this.#begin = undefined
    this.#store = undefined
    if (begin !== undefined) return Promise.resolve(this.#send(begin)).then(() => undefined)
    if (store !== undefined) {
      return Promise.resolve(this.#sendNamed([store.text, store.values])).then(
        () => undefined,
        (error: unknown) => {
          throw this.#failStore(error)
        },
      )
    }
    return undefined
  }

  #failStore(error: unknown): Error {
    const failure = translateDatabaseError(error, 1)
    this.#storeFailed = failure
    return failure
  }

  /** node-postgres's query, with the library's statements named (each connection parses them once). */
  #sendNamed(args: unknown[]): unknown {
    const [text] = args
    const statement = typeof text === 'string' ? libraryStatementOf(text) : undefined
    if (statement === undefined) return this.#send(...args)
    const named = [{ text, name: statement.name }, ...args.slice(1)]
    const result = this.#send(...named) as PromiseLike<unknown> | undefined
    // A promise of the pool's own Promise class (node-postgres lets it be configured), or
    // nothing when a callback was passed.
    if (typeof result?.then !== 'function') return result
    return result.then(undefined, (error: unknown) => {
      this.#forgetIfServerForgot(error)
      throw error
    })
  }

  #batch(statements: BatchStatement[]): Promise<BatchResult[]> {
    return sendBatch(this.#send, this.#client, statements).catch((error: BatchError) => {
      this.#forgetIfServerForgot(error.cause)
      throw error
    })
  }

  #parsed(statement: LibraryStatement): boolean {
    return this.#client.connection?.parsedStatements?.[statement.name] !== undefined
  }

  // The server forgot a statement (DISCARD ALL, DEALLOCATE, a pooler) while node-postgres still
  // counts it as parsed and would never send it again. Whatever forgot one forgot the others
  // too: have every library statement parse again on its next use here.
  #forgetIfServerForgot(error: unknown): void {
    if (sqlStateOf(error) !== SqlState.INVALID_SQL_STATEMENT_NAME) return
    for (const record of [this.#client.connection?.parsedStatements, this.#client.connection?.submittedNamedStatements]) {
      for (const name of Object.keys(record ?? {})) if (name.startsWith(STATEMENT_NAME_PREFIX)) delete record![name]
    }
  }
}

function resultOf(command: string, rowCount: number | null = null): BatchResult {
  return { command, rowCount, rows: [] }
}
