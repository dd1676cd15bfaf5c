import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { canonicalJson, ignoredFieldsOf } from '../../src/canonical-json.ts'
import { kyselyApp, type ContractRoute } from '../http/contract-routes.ts'
import { startExpress, startFastify, startHono, type RunningServer, type StartServer } from '../http/servers.ts'
import { useTestDatabase } from '../support/test-database.ts'

// A route that ignores a whole object and, redundantly, one of its fields. The redundant path must
// not spill over onto another field: `amount` at the top level is the payment, never ignored.
const runs = { count: 0 }
const routes: ContractRoute[] = [
  {
    method: 'post',
    path: '/payments',
    policy: { required: true, ignoreFields: ['metadata', 'metadata.amount'] },
    handler: async ({ tx, body }) => {
      runs.count++
      const { rows } = await sql<{ amount: string }>`select ${String(body.amount)}::text as amount`.execute(tx)
      return { status: 201, body: { charged: rows[0]!.amount } }
    },
  },
]

describe('ignoreFields: a path under an ignored path', () => {
  it('ignores only the fields named, whatever order the paths come in', () => {
    const ignored = ignoredFieldsOf([['metadata'], ['metadata', 'amount']])
    expect(canonicalJson('{"amount":100}', 10, ignored)).not.toBe(canonicalJson('{"amount":1000000}', 10, ignored))
    const deeper = ignoredFieldsOf([['a', 'b'], ['a', 'b', 'c', 'd']])
    expect(canonicalJson('{"a":{"c":{"d":1}}}', 10, deeper)).not.toBe(canonicalJson('{"a":{"c":{"d":2}}}', 10, deeper))
  })

  const database = useTestDatabase()
  for (const [framework, start] of [
    ['Express', startExpress],
    ['Fastify', startFastify],
    ['Hono', startHono],
  ] as [string, StartServer][]) {
    describe(framework, () => {
      let server: RunningServer
      beforeAll(async () => {
        server = await start(kyselyApp(database.db), routes)
      })
      afterAll(async () => {
        await server?.close()
      })

      it('refuses the same key with another top-level amount instead of replaying the first charge', async () => {
        const key = randomUUID()
        const post = (body: unknown) =>
          fetch(server.url + '/payments', { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': key, 'x-api-key': 'attacker' }, body: JSON.stringify(body) })
        const first = await post({ amount: 100, metadata: { sentAt: 1 } })
        expect(first.status).toBe(201)
        const before = runs.count
        const changed = await post({ amount: 1000000, metadata: { sentAt: 2 } })
        expect(changed.headers.get('idempotent-replayed')).toBeNull()
        expect(changed.status).toBe(422)
        expect(runs.count).toBe(before)
        // The ignored object itself still makes no difference.
        const same = await post({ amount: 100, metadata: { sentAt: 3, amount: 5 } })
        expect(same.status).toBe(201)
        expect(same.headers.get('idempotent-replayed')).toBe('true')
      })
    })
  }
})
