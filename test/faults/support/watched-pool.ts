// A Kysely on a node-postgres pool whose connection errors are counted: a server going away
// makes idle connections emit 'error', which ends a process that does not listen.
import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import { optimizedDialect } from '../../../src/index.ts'

export interface WatchedPool {
  db: Kysely<any>
  /** 'error' events the pool and its connections emitted so far. */
  errors(): number
}

export function watchedPool(url: string, max: number, { optimized = false } = {}): WatchedPool {
  const pool = new pg.Pool({ connectionString: url, max })
  let errors = 0
  const count = () => void errors++
  pool.on('error', count)
  pool.on('connect', (client) => client.on('error', count))
  return { db: new Kysely({ dialect: optimized ? optimizedDialect({ pool }) : new PostgresDialect({ pool }) }), errors: () => errors }
}
