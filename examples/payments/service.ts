// Runs the payments service on a real PostgreSQL: DATABASE_URL's database when set (migrated
// and given the service's tables if they are missing), otherwise a fresh embedded server.
import type { AddressInfo } from 'node:net'
import type { Kysely } from 'kysely'
import { PgBoss } from 'pg-boss'
import { migrate } from '../../src/index.ts'
import { registerJobs } from '../../src/jobs/index.ts'
import { connect } from '../../tools/databases.ts'
import { startServiceDatabase } from '../../tools/service-database.ts'
import { createApiClient } from './api-clients.ts'
import { buildPaymentsApp } from './app.ts'
import { createPaymentsTables, type PaymentsDatabase } from './schema.ts'

export interface PaymentsService {
  url: string
  db: Kysely<PaymentsDatabase>
  boss: PgBoss
  /** The API key of a client made at start, for the demo and for curl. */
  apiKey: string
  /** Where PostgreSQL came from, for one line of output. */
  postgres: string
  stop(): Promise<void>
}

export async function startPaymentsService(port = 0): Promise<PaymentsService> {
  const { url, description, stop } = await startServiceDatabase('pgidem_payments')
  // The library's statements prepared once per connection: the recommended set-up for node-postgres.
  const db = connect<PaymentsDatabase>(url, 20, { optimized: true })
  await migrate(db)
  await createPaymentsTables(db)
  const { apiKey } = await createApiClient(db, 'demo')
  // pg-boss runs the customer deletions and the expiry sweep, in the same database.
  const boss = new PgBoss({ connectionString: url, max: 4 })
  boss.on('error', (error) => console.error(`pg-boss: ${error.message}`))
  await boss.start()
  await registerJobs(boss, { db, pollingIntervalSeconds: 0.5 })
  const app = await buildPaymentsApp(db, boss)
  await app.listen({ port, host: '127.0.0.1' })
  return {
    url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`,
    db,
    boss,
    apiKey,
    postgres: description,
    async stop() {
      await app.close()
      await boss.stop({ graceful: false })
      await db.destroy()
      await stop()
    },
  }
}
