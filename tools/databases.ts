// Creating and dropping throw-away databases on a server that `startLocalPostgres` found.
import { randomBytes } from 'node:crypto'
import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import { optimizedDialect } from '../src/data/kysely/optimized-dialect.ts'

/** The same server, another database. */
export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url)
  parsed.pathname = `/${encodeURIComponent(database)}`
  return parsed.toString()
}

export function uniqueDatabaseName(prefix: string): string {
  return `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`
}

/** Runs `work` on a single admin connection (CREATE DATABASE cannot run in a transaction). */
export async function withAdminClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return await work(client)
  } finally {
    await client.end()
  }
}

export async function createDatabase(url: string, name: string, template?: string): Promise<void> {
  await withAdminClient(url, (client) =>
    client.query(`create database ${pg.escapeIdentifier(name)}${template ? ` template ${pg.escapeIdentifier(template)}` : ''}`),
  )
}

/**
 * Drops a database once its connections have gone. A pool's `end()` resolves before its
 * backends have exited; forcing the drop at once would make them send the closing clients a
 * FATAL error nobody listens for any more. After five seconds the drop is forced anyway.
 */
export async function dropDatabase(url: string, name: string): Promise<void> {
  await withAdminClient(url, async (client) => {
    const deadline = Date.now() + 5_000
    while (Date.now() < deadline) {
      const { rows } = await client.query<{ n: number }>('select count(*)::int as n from pg_stat_activity where datname = $1', [name])
      if (rows[0]?.n === 0) break
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    await client.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`)
  })
}

/**
 * A Kysely instance on a pg pool; `max` connections at most. `optimized` sets the pool up with
 * optimizedDialect, as the example service and the benchmarks do; most tests leave it off, so they
 * run the path every user starts on (test/optimized-dialect.test.ts and the concurrency suite cover it).
 */
export function connect<DB = any>(
  url: string,
  max = 10,
  { optimized = false, idleTimeoutMillis }: { optimized?: boolean; idleTimeoutMillis?: number } = {},
): Kysely<DB> {
  const pool = new pg.Pool({ connectionString: url, max, ...(idleTimeoutMillis === undefined ? {} : { idleTimeoutMillis }) })
  // A connection that dies while no query runs on it emits 'error'; with no listener that
  // crashes the process. The pool listens only to idle connections, so every connection gets
  // its own listener too. The next query on it fails, and that error is the one to handle.
  const ignore = () => {}
  pool.on('error', ignore)
  pool.on('connect', (client) => client.on('error', ignore))
  return new Kysely<DB>({ dialect: optimized ? optimizedDialect({ pool }) : new PostgresDialect({ pool }) })
}
