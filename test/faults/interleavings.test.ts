// The randomized interleaving model, short form: seconds of random requests with faults on a
// few keys at once, checked after each interleaving. `npm run test:faults` runs the long form
// (test/faults/long-form.ts). FAULT_SEED=<n> repeats a run's requests.
import { randomInt } from 'node:crypto'
import type { Kysely } from 'kysely'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { connect } from '../../tools/databases.ts'
import { useTestDatabase } from '../support/test-database.ts'
import { startCuttingProxy, type CuttingProxy } from './support/cutting-proxy.ts'
import { createEffects } from './support/effects.ts'
import { formatReport, runModel, type ModelReport } from './support/interleaving-model.ts'

const database = useTestDatabase({ maxConnections: 12 })
const pools: Record<string, Kysely<any>> = {}
let report: ModelReport
let proxy: CuttingProxy

beforeAll(async () => {
  await createEffects(database.db)
  // Requests go through a proxy that can drop a COMMIT's reply; kills and checks go direct.
  proxy = await startCuttingProxy(database.url)
  pools.plain = connect(proxy.url, 4)
  pools.optimized = connect(proxy.url, 4, { optimized: true })
})
afterAll(async () => {
  await Promise.all(Object.values(pools).map((db) => db.destroy()))
  await proxy?.close()
})

it('runs every key at most once and replays every success byte for byte, whatever the faults and their interleaving', async () => {
  const seed = Number(process.env.FAULT_SEED ?? randomInt(2 ** 31))
  console.log(`interleaving model: seed ${seed} (FAULT_SEED=${seed} repeats these requests)`)
  report = await runModel({ seed, interleavings: 20, workers: 6, keys: 3, requestsPerWorker: 4, pools, admin: database.db, cutCommitReply: () => void proxy.cutNextCommitReply() })
  console.log(formatReport(report))
  expect(report.violations).toEqual([])
  expect(report.interleavings).toBe(20)
  // The model did exercise what it claims to.
  expect(report.firstRuns).toBeGreaterThan(0)
  expect(report.replays).toBeGreaterThan(0)
})

it("raises only typed errors with stable codes, retryable after a lost connection or a twin's wait", () => {
  expect(report.errorViolations.slice(0, 10)).toEqual([])
})
