// Statements in one message behind a single Sync: what optimizePool sends where node-postgres
// would make one round trip per statement (each of its queries ends with a Sync).
//
// It is a node-postgres Submittable, the interface pg-cursor and pg-query-stream use: the client
// hands it the connection to write to and passes it the server's replies. After an error the
// server skips every message up to the Sync, so a statement after a failed one never runs: a
// failed claim or store never reaches the COMMIT behind it.
import { sqlStateOf } from '../store/sql-state.ts'

/** One statement of a batch. */
export interface BatchStatement {
  /**
   * A named statement: parsed on this connection the first time (after a Close, so a name the
   * server still has from before node-postgres forgot it does not clash), then only bound.
   * Without a name, `text` is parsed unnamed each time.
   */
  name?: string
  text: string
  values: readonly unknown[]
  /** Collect the rows it returns (it is described, and each row is parsed as node-postgres parses it). */
  rows?: boolean
}

/** What one statement of a batch returned, in node-postgres's result shape (what kysely reads). */
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
  constructor(cause: unknown, completed: number) {
    super(cause instanceof Error ? cause.message : String(cause), { cause })
    this.name = 'BatchError'
    this.completed = completed
    // node-postgres's DatabaseError, made from the server's ErrorResponse, carries its severity.
    this.fromServer = sqlStateOf(cause) !== undefined && typeof (cause as { severity?: unknown }).severity === 'string'
  }
}

/** The part of a node-postgres client a batch uses. */
export interface BatchClient {
  /** Its type parsers, so rows come out as its own queries' rows do. */
  getTypeParser(oid: number, format: 'text'): (text: string) => unknown
  /** node-postgres's record of the statements this connection has parsed (internal). */
  connection?: { parsedStatements?: Record<string, string> }
}
/** node-postgres's `client.query`, which takes a Submittable. */
export type Submit = (submittable: object) => unknown

interface BatchConnection {
  stream: { cork?(): void; uncork?(): void }
  parse(message: { name?: string; text: string; types: unknown[] }): void
  bind(message: { statement?: string; values: unknown[] }): void
  describe(message: { type: 'P'; name: string }): void
  close(message: { type: 'S'; name: string }): void
  execute(message: { portal: string; rows: number }): void
  sync(): void
  sendCopyFail(message: string): void
}
interface Field {
  name: string
  dataTypeID: number
}
type Done = (error: unknown, results?: BatchResult[]) => void

/** Sends `statements` in one message through `submit` and resolves with each one's result, in order. */
export function sendBatch(submit: Submit, client: BatchClient, statements: readonly BatchStatement[]): Promise<BatchResult[]> {
  return new Promise((resolve, reject) => {
    try {
      submit(new BatchQuery(client, statements, (error, results) => (error ? reject(error) : resolve(results!))))
    } catch (error) {
      reject(new BatchError(error, 0))
    }
  })
}

class BatchQuery {
  /**
   * node-postgres calls this itself when a `query_timeout` runs out, and wraps it to clear that
   * timer, so the batch settles through it.
   */
  callback: Done
  readonly #client: BatchClient
  readonly #statements: readonly BatchStatement[]
  readonly #results: BatchResult[] = []
  #fields: Field[] = []
  #rows: Record<string, unknown>[] = []
  /** A type parser threw: the batch fails with it once the server is done. */
  #parseError: unknown
  #settled = false

  constructor(client: BatchClient, statements: readonly BatchStatement[], done: Done) {
    this.#client = client
    this.#statements = statements
    this.callback = (error, results) => {
      // From node-postgres's timeout: a plain error, and nothing is known of the statements.
      done(error === undefined || error === null || error instanceof BatchError ? error : new BatchError(error, this.#results.length), results)
    }
  }

  submit(connection: BatchConnection): null {
    const parsed = this.#client.connection?.parsedStatements
    connection.stream.cork?.()
    try {
      for (const statement of this.#statements) {
        const { name, text } = statement
        if (name === undefined) connection.parse({ text, types: [] })
        else if (parsed?.[name] === undefined) {
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
    const parsed = this.#client.connection?.parsedStatements
    if (statement?.name !== undefined && parsed !== undefined) parsed[statement.name] = statement.text
    const [command, rowCount] = parseTag(message.text)
    this.#results.push({ command, rowCount, rows: this.#rows })
    this.#rows = []
    this.#fields = []
  }

  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
  handleCopyInResponse(connection: BatchConnection): void {
    connection.sendCopyFail('pg-idempotency batches do not copy')
  }
  handleCopyData(): void {}

  // node-postgres stops routing the batch's replies to it after an error (the ReadyForQuery that
  // follows goes nowhere), so the batch settles here.
  handleError(error: unknown): void {
    this.#settle(new BatchError(error, this.#results.length))
  }

  handleReadyForQuery(): void {
    this.#settle(this.#parseError === undefined ? undefined : new BatchError(this.#parseError, this.#results.length))
  }

  #settle(error: BatchError | undefined): void {
    if (this.#settled) return
    this.#settled = true
    this.callback(error, this.#results)
  }
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
