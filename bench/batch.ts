// Several statements in one message with one Sync: what the floor benchmark (floor.ts) needs
// and node-postgres does not offer (each of its queries ends with its own Sync).
import type pg from 'pg'

/** A statement as node-postgres takes it: named, so each connection parses it once. */
export interface Statement {
  name: string
  text: string
  values: unknown[]
}

/**
 * Sends `statements` in one message with a single Sync, as node-postgres's own extended queries
 * do for one statement, and resolves with their command tags. After an error the server skips
 * the rest up to the Sync, so a failed store never reaches its COMMIT.
 */
export function sendBatch(client: pg.Client, statements: Statement[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    client.query(new Batch(statements, (error, tags) => (error ? reject(error) : resolve(tags))) as never)
  })
}

/** A node-postgres Submittable: it writes the messages and hears the replies itself. */
class Batch {
  readonly #statements: Statement[]
  readonly #done: (error: unknown, tags: string[]) => void
  readonly #tags: string[] = []
  #error: unknown

  constructor(statements: Statement[], done: (error: unknown, tags: string[]) => void) {
    this.#statements = statements
    this.#done = done
  }

  submit(connection: BatchConnection): null {
    // node-postgres's own record of the statements this connection has parsed, so that a
    // statement parsed here is not parsed again by a plain client.query, nor the other way round.
    const parsed = connection.parsedStatements
    connection.stream.cork()
    for (const { name, text, values } of this.#statements) {
      if (parsed[name] === undefined) {
        connection.parse({ name, text, types: [] })
        parsed[name] = text
      }
      connection.bind({ statement: name, values: values.map((value) => (value === null || Buffer.isBuffer(value) ? value : String(value))) })
      connection.execute({ portal: '', rows: 0 })
    }
    connection.sync()
    connection.stream.uncork()
    return null
  }

  handleRowDescription(): void {}
  handleDataRow(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
  handleCommandComplete(message: { text: string }): void {
    this.#tags.push(message.text)
  }
  handleError(error: unknown): void {
    this.#error ??= error
  }
  handleReadyForQuery(): void {
    this.#done(this.#error, this.#tags)
  }
}

/** The part of node-postgres's connection a Submittable writes to. */
interface BatchConnection {
  parsedStatements: Record<string, string>
  stream: { cork(): void; uncork(): void }
  parse(message: { name: string; text: string; types: unknown[] }): void
  bind(message: { statement: string; values: unknown[] }): void
  execute(message: { portal: string; rows: number }): void
  sync(): void
}
