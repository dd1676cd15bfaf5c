// Statements in one message behind a single Sync, where node-postgres would make one round trip
// per statement (each of its queries ends with a Sync).
//
// It is a node-postgres Submittable, the documented interface pg-cursor and pg-query-stream use:
// `client.query(batch)` hands it the connection to write to and passes it the server's replies.
// After an error the server skips every message up to the Sync, so a statement after a failed one
// never runs: a failed claim or store never reaches the COMMIT behind it.
//
// A batch settles only once the connection is ready for the next query (the server's
// ReadyForQuery), so its caller may send the next one at once and never relies on node-postgres
// queueing queries client-side (which pg 9 drops). Which named statements the connection has
// parsed is this module's own record (parsed-statements.ts), not node-postgres's.
import { SqlState, sqlStateOf } from '../../store/sql-state.ts'
import { parsedStatementsOf } from './parsed-statements.ts'

/** One statement of a batch. */
export interface BatchStatement {
  /**
   * A named statement: parsed on this connection the first time (after a Close, so a name the
   * server still has, from a pooler's other client say, does not clash), then only bound.
   * Without a name, `text` is parsed unnamed each time.
   */
  name?: string | undefined
  text: string
  values: readonly unknown[]
  /** Collect the rows it returns (it is described, and each row is parsed as node-postgres parses it). */
  rows?: boolean
}

/** What one statement of a batch returned, in node-postgres's result shape. */
export interface BatchResult {
  command: string
  rowCount: number | null
  rows: Record<string, unknown>[]
}

/** A failed batch: the error, and how many of its statements had completed before it. */
export class BatchError extends Error {
  /** Statements that completed before the error. */
  readonly completed: number
  /**
   * The server answered with an error, so it skipped every later statement of the batch. When
   * false (a timeout, a lost connection) what the server did with the rest is unknown.
   */
  readonly fromServer: boolean
  constructor(cause: unknown, completed: number, fromServer: boolean) {
    super(cause instanceof Error ? cause.message : String(cause), { cause })
    this.name = 'BatchError'
    this.completed = completed
    this.fromServer = fromServer
  }
}

/** The part of a node-postgres `Client` a batch uses: its documented `query` and type parsers. */
export interface BatchClient {
  query(submittable: object): unknown
  /** So rows come out as the client's own queries' rows do. */
  getTypeParser(oid: number, format: 'text'): (text: string) => unknown
}

/** A batch on its way: its results, and when the connection is free again. */
export interface SentBatch {
  results: Promise<BatchResult[]>
  /**
   * Resolves once node-postgres may be handed the next query: at the server's ReadyForQuery, or
   * when the connection failed. Later than `results` only when a `query_timeout` ran out.
   */
  idle: Promise<void>
}

/** Sends `statements` in one message on `client` and resolves with each one's result, in order. */
export function sendBatch(client: BatchClient, statements: readonly BatchStatement[]): SentBatch {
  let settle!: (error: BatchError | undefined, results: BatchResult[]) => void
  let becomeIdle!: () => void
  const results = new Promise<BatchResult[]>((resolve, reject) => {
    settle = (error, results) => (error === undefined ? resolve(results) : reject(error))
  })
  const idle = new Promise<void>((resolve) => (becomeIdle = resolve))
  const batch = new BatchQuery(client, statements, settle, becomeIdle)
  try {
    client.query(batch)
  } catch (error) {
    settle(new BatchError(error, 0, false), [])
    becomeIdle()
  }
  return { results, idle }
}

interface WireConnection {
  stream: { cork?(): void; uncork?(): void }
  parse(message: { name?: string; text: string; types: unknown[] }): void
  bind(message: { statement?: string; values: unknown[] }): void
  describe(message: { type: 'P'; name: string }): void
  close(message: { type: 'S'; name: string }): void
  execute(message: { portal: string; rows: number }): void
  sync(): void
  sendCopyFail(message: string): void
  once(event: 'readyForQuery' | 'end', listener: () => void): unknown
  removeListener(event: 'readyForQuery' | 'end', listener: () => void): unknown
}
type Settle = (error: BatchError | undefined, results: BatchResult[]) => void
interface Field {
  name: string
  dataTypeID: number
}

class BatchQuery {
  /**
   * node-postgres calls this itself, and only, when a `query_timeout` runs out (it wraps it to
   * clear that timer), so a timeout settles the batch through it.
   */
  callback: (error: unknown) => void
  readonly #client: BatchClient
  readonly #statements: readonly BatchStatement[]
  readonly #settle: Settle
  readonly #becomeIdle: () => void
  readonly #results: BatchResult[] = []
  #fields: Field[] = []
  #rows: Record<string, unknown>[] = []
  /** A type parser threw: the batch fails with it once the server is done. */
  #parseError: unknown
  #settled = false
  #timedOut: unknown

  constructor(client: BatchClient, statements: readonly BatchStatement[], settle: Settle, becomeIdle: () => void) {
    this.#client = client
    this.#statements = statements
    this.#settle = settle
    this.#becomeIdle = becomeIdle
    this.callback = (error) => {
      this.#timedOut = error
      this.#finish(new BatchError(error, this.#results.length, false))
    }
  }

  submit(connection: WireConnection): null {
    const parsed = parsedStatementsOf(this.#client)
    connection.stream.cork?.()
    try {
      for (const statement of this.#statements) {
        const { name, text } = statement
        if (name === undefined) connection.parse({ text, types: [] })
        else if (!parsed.has(name)) {
          connection.close({ type: 'S', name })
          connection.parse({ name, text, types: [] })
        }
        connection.bind({ statement: name ?? '', values: statement.values.map(wireValue) })
        if (statement.rows) connection.describe({ type: 'P', name: '' })
        connection.execute({ portal: '', rows: 0 })
      }
      connection.sync()
    } finally {
      connection.stream.uncork?.()
    }
    return null
  }

  handleRowDescription(message: { fields: Field[] }): void {
    this.#fields = message.fields
  }

  handleDataRow(message: { fields: (string | null)[] }): void {
    if (this.#parseError !== undefined) return
    try {
      const row: Record<string, unknown> = {}
      this.#fields.forEach((field, index) => {
        const text = message.fields[index]
        row[field.name] = text === null || text === undefined ? null : this.#client.getTypeParser(field.dataTypeID, 'text')(text)
      })
      this.#rows.push(row)
    } catch (error) {
      this.#parseError = error
    }
  }

  handleCommandComplete(message: { text: string }): void {
    const statement = this.#statements[this.#results.length]
    // Parsed, bound and run: the server has the named statement now.
    if (statement?.name !== undefined) parsedStatementsOf(this.#client).add(statement.name)
    const [command, rowCount] = parseTag(message.text)
    this.#results.push({ command, rowCount, rows: this.#rows })
    this.#rows = []
    this.#fields = []
  }

  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
  handleCopyInResponse(connection: WireConnection): void {
    connection.sendCopyFail('pg-idempotency batches do not copy')
  }
  handleCopyData(): void {}

  // node-postgres stops routing the batch's replies to it after an error: the ReadyForQuery that
  // follows a server's error goes only to the connection's listeners.
  handleError(error: unknown, connection: WireConnection | undefined): void {
    if (error === this.#timedOut) return // node-postgres reports its own timeout here too
    const fromServer = isServerError(error)
    if (fromServer) forgetIfServerForgot(this.#client, error)
    // A FATAL one (the backend terminated) is followed by the end of the connection, not by a ReadyForQuery.
    if (fromServer && connection !== undefined && !isFatal(error)) {
      const finish = () => {
        connection.removeListener('readyForQuery', finish)
        connection.removeListener('end', finish)
        this.#finish(new BatchError(error, this.#results.length, true))
      }
      connection.once('readyForQuery', finish)
      connection.once('end', finish)
    } else {
      this.#finish(new BatchError(error, this.#results.length, fromServer))
    }
  }

  handleReadyForQuery(): void {
    this.#finish(this.#parseError === undefined ? undefined : new BatchError(this.#parseError, this.#results.length, false))
  }

  /** Settles the batch (the first call only), and frees the connection unless a timeout cut in. */
  #finish(error: BatchError | undefined): void {
    if (this.#timedOut === undefined || error?.cause !== this.#timedOut) this.#becomeIdle()
    if (this.#settled) return
    this.#settled = true
    this.#settle(error, this.#results)
  }
}

/** node-postgres's DatabaseError, made from the server's ErrorResponse, carries its severity. */
function isServerError(error: unknown): boolean {
  return sqlStateOf(error) !== undefined && typeof (error as { severity?: unknown }).severity === 'string'
}

function isFatal(error: unknown): boolean {
  const severity = (error as { severity?: unknown }).severity
  return severity === 'FATAL' || severity === 'PANIC'
}

// The server forgot a statement (DISCARD ALL, DEALLOCATE, a pooler) that this connection counts
// as parsed, or a migration changed what one returns ("cached plan must not change result type"):
// each is parsed again on its next use, after a Close in case the server still has it.
function forgetIfServerForgot(client: BatchClient, error: unknown): void {
  const sqlState = sqlStateOf(error)
  if (sqlState === SqlState.INVALID_SQL_STATEMENT_NAME || sqlState === SqlState.FEATURE_NOT_SUPPORTED) parsedStatementsOf(client).clear()
}

/** A command tag ('INSERT 0 1', 'COMMIT', 'SELECT 1') read as node-postgres reads it: the command and its row count. */
function parseTag(tag: string): [string, number | null] {
  const match = /^([A-Za-z]+)(?: (\d+))?(?: (\d+))?/.exec(tag)
  if (match === null) return [tag, null]
  const count = match[3] ?? match[2]
  return [match[1]!, count === undefined ? null : Number(count)]
}

/** Parameters as text, like node-postgres sends them (the library's own statements use only these types). */
function wireValue(value: unknown): string | Buffer | null {
  if (value === null || value === undefined) return null
  if (Buffer.isBuffer(value)) return value
  return String(value)
}
