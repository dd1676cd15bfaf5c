// The Express + Drizzle billing example over real HTTP, on a test file's own database: a
// node-postgres pool, Drizzle on it, the example's migrations, and the app on a free port.
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres'
import pg from 'pg'
import { afterAll, beforeAll } from 'vitest'
import { buildBillingApp } from '../../examples/billing/app.ts'
import { migrateBilling } from '../../examples/billing/setup.ts'
import type { TestDatabase } from './test-database.ts'

export interface RunningBillingApp {
  /** The service's base URL, once `beforeAll` has run. */
  readonly url: string
  /** The service's own Drizzle database. */
  readonly db: NodePgDatabase
}

export function useBillingApp(database: TestDatabase<unknown>, { maxConnections = 25 } = {}): RunningBillingApp {
  const state = { url: '', db: undefined as unknown as NodePgDatabase }
  let pool: pg.Pool | undefined
  let server: ReturnType<ReturnType<typeof buildBillingApp>['listen']> | undefined
  beforeAll(async () => {
    pool = new pg.Pool({ connectionString: database.url, max: maxConnections })
    pool.on('connect', (client) => client.on('error', () => {}))
    state.db = drizzle({ client: pool })
    await migrateBilling(state.db)
    server = buildBillingApp(state.db).listen(0, '127.0.0.1')
    await once(server, 'listening')
    state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  afterAll(async () => {
    server?.closeAllConnections()
    if (server) await new Promise((resolve) => server!.close(resolve))
    await pool?.end()
  })
  return state
}
