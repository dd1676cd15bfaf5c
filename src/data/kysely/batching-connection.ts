// One connection of an optimized kysely dialect (optimized-dialect.ts): kysely's own
// PostgresConnection underneath, and the node-postgres client it runs on, to which this sends the
// library's statements named, and in the same message as the transaction control next to them.
//
// - BEGIN is held back until the transaction's first statement. If that is the library's claim
//   (`travelsWith: 'begin'`), both go in one message; anything else is sent after BEGIN.
// - The library's stored result (`travelsWith: 'commit'`) is held back until the next statement,
//   which it goes out ahead of (awaited), or the COMMIT, with which it goes in one message: should
//   it fail, the server skips the COMMIT, and the commit rejects with its `deferredError`.
// - A store that went out ahead of another statement and failed fails that statement, every
//   later one (not sent: a rollback to a savepoint of fn's must not un-fail the transaction) and
//   the COMMIT, with its typed error; kysely, or the caller, then rolls back.
//
// What is held and what failed belongs to one transaction (a fresh state at every BEGIN, none
// after COMMIT, ROLLBACK or release), so nothing reaches the next transaction on the connection.
// Queries reach node-postgres one at a time, each once the one before has settled.
import type { CompiledQuery, DatabaseConnection, Driver, QueryResult, TransactionSettings } from 'kysely'
import { BatchError, sendBatch, type BatchClient, type BatchResult, type BatchStatement } from '../pg-wire/batch-query.ts'
import type { Statement } from '../statement.ts'
import { statementOf } from './session.ts'

/** What the current transaction holds back or learned. */
interface TransactionState {
  /** BEGIN, not sent yet. */
  begin?: CompiledQuery | undefined
  /** The library's stored result, not sent yet. */
  store?: Statement | undefined
  /** A store that went out ahead of another statement failed: the transaction must not commit. */
  failure?: Error | undefined
}

const ignore = () => {}

export class BatchingConnection implements DatabaseConnection {
  /** kysely's PostgresConnection, which runs every query that is not the library's. */
  readonly inner: DatabaseConnection
  readonly #client: BatchClient
  readonly #holding: boolean
  #tx: TransactionState | undefined
  /** The last call's work, settled once it is done. */
  #queue: Promise<unknown> = Promise.resolve()
  /** Settles once the last query handed to node-postgres has left the connection free for the next. */
  #idle: Promise<unknown> = Promise.resolve()

  /**
   * @param holding hold BEGIN and the store back to share a message; without it the library's
   *   statements are only named.
   */
  constructor(inner: DatabaseConnection, client: BatchClient, holding: boolean) {
    this.inner = inner
    this.#client = client
    this.#holding = holding
  }

  executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    return this.#exclusive(() => this.#execute(query)) as Promise<QueryResult<R>>
  }

  async *streamQuery<R>(query: CompiledQuery, chunkSize: number): AsyncIterableIterator<QueryResult<R>> {
    let release!: () => void
    const done = new Promise<void>((resolve) => (release = resolve))
    // The cursor reads in several round trips: nothing else goes to node-postgres meanwhile.
    await this.#exclusive(async () => {
      await this.#flush()
      await this.#idle
      this.#idle = done
    })
    try {
      yield* this.inner.streamQuery<R>(query, chunkSize)
    } finally {
      release()
    }
  }

  cancelQuery(...args: Parameters<NonNullable<DatabaseConnection['cancelQuery']>>): Promise<void> {
    return this.inner.cancelQuery?.(...args) ?? Promise.resolve()
  }

  killSession(...args: Parameters<NonNullable<DatabaseConnection['killSession']>>): Promise<void> {
    return this.inner.killSession?.(...args) ?? Promise.resolve()
  }

  collectSessionInfo(): Promise<void> {
    return this.inner.collectSessionInfo?.() ?? Promise.resolve()
  }

  /** Starts a transaction: its BEGIN (made by `driver`) is held back when it can wait. */
  begin(driver: Driver, settings: TransactionSettings): Promise<void> {
    return this.#exclusive(async () => {
      const tx: TransactionState = {}
      this.#tx = tx
      // One with an access mode goes at once: READ WRITE can fail (on a standby), and nothing may run outside it.
      const hold = this.#holding && settings.accessMode === undefined
      await driver.beginTransaction(
        capture((begin) => {
          if (hold) tx.begin = begin
          else return this.#plain(begin)
        }),
        settings,
      )
    })
  }

  /** Commits (through `driver`, which reads the reply): with the held store in one message. */
  commit(driver: Driver): Promise<void> {
    return this.#exclusive(async () => {
      const tx = this.#tx ?? {}
      this.#tx = undefined
      if (tx.failure !== undefined) throw tx.failure
      if (tx.begin !== undefined) return // no statement ran: there is nothing on the server to commit
      const store = tx.store
      if (store === undefined) return driver.commitTransaction(capture((commit) => this.#plain(commit)))
      return driver.commitTransaction(
        capture(async (commit) => {
          try {
            const [, result] = await this.#batch([named(store, false), unnamed(commit)])
            return { rows: [{ command: result!.command }] }
          } catch (error) {
            // The server refused the store and skipped the COMMIT. Any other failure (a lost
            // connection, a timeout) leaves the COMMIT's outcome unknown, as it would unbatched.
            const { cause, fromServer, completed } = error as BatchError
            throw fromServer && completed === 0 ? deferred(store, cause) : cause
          }
        }),
      )
    })
  }

  /** Rolls back (through `driver`); a transaction whose BEGIN was never sent has nothing to undo. */
  rollback(driver: Driver): Promise<void> {
    return this.#exclusive(async () => {
      const tx = this.#tx
      this.#tx = undefined
      if (tx?.begin !== undefined) return
      // kysely's own connection: its driver marks it for discarding when ROLLBACK fails.
      await this.#idle
      const rolledBack = driver.rollbackTransaction(this.inner)
      this.#idle = rolledBack.then(ignore, ignore)
      await rolledBack
    })
  }

  /** Forgets the transaction's state: the connection goes back to the pool. */
  release(): void {
    this.#tx = undefined
  }

  /** Runs `work` once every query before it has settled, and the connection is free. */
  #exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(work)
    this.#queue = run.then(ignore, ignore)
    return run
  }

  async #execute(query: CompiledQuery): Promise<QueryResult<unknown>> {
    const statement = statementOf(query)
    const tx = this.#tx
    if (tx?.failure !== undefined) throw tx.failure
    if (tx?.begin !== undefined && statement?.travelsWith === 'begin' && statement.name !== undefined) {
      const begin = tx.begin
      tx.begin = undefined
      return resultOf((await this.#batchOrThrow([unnamed(begin), named(statement, true)]))[1]!)
    }
    await this.#flush()
    if (tx !== undefined && this.#holding && statement?.travelsWith === 'commit' && statement.name !== undefined) {
      tx.store = statement
      return { rows: [] }
    }
    if (statement?.name !== undefined) return resultOf((await this.#batchOrThrow([named(statement, true)]))[0]!)
    return this.#plain(query)
  }

  /** Sends what the transaction holds back, on its own; a store's failure fails the transaction. */
  async #flush(): Promise<void> {
    const tx = this.#tx
    if (tx === undefined) return
    const { begin, store } = tx
    tx.begin = undefined
    tx.store = undefined
    if (begin !== undefined) await this.#plain(begin)
    if (store !== undefined) {
      try {
        await this.#batchOrThrow([named(store, false)])
      } catch (error) {
        tx.failure = deferred(store, error)
        throw tx.failure
      }
    }
  }

  // Each waits until the query before it has left the connection free (later than its promise
  // only after a query_timeout), so node-postgres never has to queue one.
  async #plain(query: CompiledQuery): Promise<QueryResult<unknown>> {
    await this.#idle
    const sent = this.inner.executeQuery(query)
    this.#idle = sent.then(ignore, ignore)
    return sent
  }

  async #batch(statements: BatchStatement[]): Promise<BatchResult[]> {
    await this.#idle
    const { results, idle } = sendBatch(this.#client, statements)
    this.#idle = idle
    return results
  }

  async #batchOrThrow(statements: BatchStatement[]): Promise<BatchResult[]> {
    try {
      return await this.#batch(statements)
    } catch (error) {
      throw (error as BatchError).cause
    }
  }
}

/** A connection that hands the driver's query to `send` instead of running it. */
function capture(send: (query: CompiledQuery) => unknown): DatabaseConnection {
  return {
    executeQuery: async (query) => ((await send(query)) ?? { rows: [] }) as QueryResult<never>,
    streamQuery: () => {
      throw new Error('pg-idempotency: a transaction control statement does not stream')
    },
  }
}

const named = (statement: Statement, rows: boolean): BatchStatement => ({ name: statement.name, text: statement.text, values: statement.values, rows })
const unnamed = (query: CompiledQuery): BatchStatement => ({ text: query.sql, values: query.parameters })
const deferred = (statement: Statement, error: unknown): Error => statement.deferredError?.(error) ?? (error as Error)

/** A batch's result as kysely's PostgresConnection returns one. */
function resultOf({ command, rowCount, rows }: BatchResult): QueryResult<unknown> {
  const affects = command === 'INSERT' || command === 'UPDATE' || command === 'DELETE' || command === 'MERGE'
  return affects && rowCount !== null ? { rows, numAffectedRows: BigInt(rowCount) } : { rows }
}
