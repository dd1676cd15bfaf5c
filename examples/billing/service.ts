// Runs the billing service on a real PostgreSQL (DATABASE_URL's database, or a fresh embedded
// server): a node-postgres pool, Drizzle on it, the migrations, an API client, Express on `port`.
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres'
import pg from 'pg'
import { startServiceDatabase } from '../../tools/service-database.ts'
import { createApiClient } from './api-clients.ts'
import { buildBillingApp } from './app.ts'
import { migrateBilling } from './setup.ts'

export interface BillingService {
  url: string
  db: NodePgDatabase
  /** The API key of a client made at start, for the demo and for curl. */
  apiKey: string
  /** Where PostgreSQL came from, for one line of output. */
  postgres: string
  stop(): Promise<void>
}

export async function startBillingService(port = 0): Promise<BillingService> {
  const postgres = await startServiceDatabase('pgidem_billing')
  const pool = new pg.Pool({ connectionString: postgres.url, max: 20 })
  // node-postgres's advice: hear a pooled connection's errors (one lost between queries).
  pool.on('connect', (client) => client.on('error', () => {}))
  const db = drizzle({ client: pool })
  await migrateBilling(db)
  const { apiKey } = await createApiClient(db, 'demo')
  const server = buildBillingApp(db).listen(port, '127.0.0.1')
  await once(server, 'listening')
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    db,
    apiKey,
    postgres: postgres.description,
    async stop() {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
      await pool.end()
      await postgres.stop()
    },
  }
}
