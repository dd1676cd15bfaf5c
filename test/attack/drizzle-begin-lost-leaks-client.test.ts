// Drizzle's node-postgres driver checks a client out of the pool and sends BEGIN before its
// try/finally (drizzle-orm node-postgres/session.js, transaction()): when BEGIN fails (the
// connection was lost: a restart, a killed backend, a pooler), the client is never released.
// Each such failure takes one connection out of the pool for good; once all are gone every
// request through database(db).transaction waits forever for a connection. Seen first as a hang
// of the killed-connections load on Drizzle (killed-connections-per-layer.test.ts).
import { randomUUID } from 'node:crypto'
import { drizzle } from 'drizzle-orm/node-postgres'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { database, withIdempotency } from '../../src/data/drizzle/index.ts'
import { useTestDatabase } from '../support/test-database.ts'

const testDatabase = useTestDatabase()
let dropNextBegin = false
let pool: pg.Pool

// node-postgres's own Client, losing its connection as BEGIN is sent when told to.
class DroppingClient extends pg.Client {
  override query(config: any, ...rest: any[]): any {
    const text = typeof config === 'string' ? config : config?.text
    if (dropNextBegin && typeof text === 'string' && /^begin/i.test(text)) {
      dropNextBegin = false
      ;(this as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy()
    }
    return (super.query as (...args: any[]) => any)(config, ...rest)
  }
}

beforeAll(() => {
  pool = new pg.Pool({ connectionString: testDatabase.url, max: 2, Client: DroppingClient })
  pool.on('error', () => {})
  pool.on('connect', (client) => client.on('error', () => {}))
})
afterAll(() => {
  // Not awaited: a leaked client keeps pool.end() from ever resolving.
  void pool?.end()
})

// SKIPPED: fails on drizzle-orm 0.45.4 (and 0.36.0): the pool keeps the client checked out. An
// upstream Drizzle defect; the library would have to open node-postgres transactions itself to
// avoid it (it only calls db.transaction, and its callback never runs when BEGIN fails).
describe.skip('Drizzle (node-postgres): the connection lost at BEGIN', () => {
  it('rejects, and gives the pool its client back', async () => {
    const db = drizzle(pool)
    dropNextBegin = true
    await expect(
      database(db).transaction((tx) => withIdempotency(tx, { scope: 'attack-drizzle-begin', key: randomUUID() }, async () => 'done')),
    ).rejects.toBeDefined()
    expect({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }).toEqual({ total: pool.totalCount, idle: pool.totalCount, waiting: 0 })
  })
})
