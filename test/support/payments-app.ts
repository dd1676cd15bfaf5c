// The example payments service over real HTTP, on a test file's own database: its tables, a
// pg-boss worker for the deletion jobs (no sweep), and the Fastify app on a free port.
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { PgBoss } from 'pg-boss'
import { afterAll, beforeAll } from 'vitest'
import { buildPaymentsApp } from '../../examples/payments/app.ts'
import { createPaymentsTables, type PaymentsDatabase } from '../../examples/payments/schema.ts'
import { registerJobs } from '../../src/jobs/index.ts'
import type { TestDatabase } from './test-database.ts'

export interface RunningPaymentsApp {
  /** The service's base URL, once `beforeAll` has run. */
  readonly url: string
}

export function usePaymentsApp(database: TestDatabase<PaymentsDatabase>, { pollingIntervalSeconds }: { pollingIntervalSeconds?: number } = {}): RunningPaymentsApp {
  let app: FastifyInstance | undefined
  let boss: PgBoss | undefined
  let url = ''
  beforeAll(async () => {
    await createPaymentsTables(database.db)
    boss = new PgBoss({ connectionString: database.url, max: 4 })
    boss.on('error', () => {})
    await boss.start()
    await registerJobs(boss, { db: database.db, sweep: false, ...(pollingIntervalSeconds === undefined ? {} : { pollingIntervalSeconds }) })
    app = await buildPaymentsApp(database.db, boss)
    await app.listen({ port: 0, host: '127.0.0.1' })
    url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  })
  afterAll(async () => {
    await app?.close()
    await boss?.stop({ graceful: false })
  })
  return {
    get url() {
      return url
    },
  }
}
