// The lowest drizzle-orm the peer range allows (drizzle-orm-lowest is an npm alias of it), on its
// node-postgres driver. The adapter imports 'drizzle-orm' itself: here that is the lowest too.
import { sql } from 'drizzle-orm-lowest'
import { drizzle } from 'drizzle-orm-lowest/node-postgres'
import pg from 'pg'
import { expect, it, vi } from 'vitest'
import { runDataLayerContract } from './contract.ts'
import { drizzleLayer } from './drizzle-layer.ts'

vi.mock('drizzle-orm', () => import('drizzle-orm-lowest'))

runDataLayerContract(
  drizzleLayer(
    'drizzle, node-postgres driver (lowest)',
    (url, max) => {
      const pool = new pg.Pool({ connectionString: url, max })
    // node-postgres's advice for a pool: hear a client's errors (a connection lost between queries).
    pool.on('connect', (client) => client.on('error', () => {}))
      return { db: drizzle(pool) as never, close: () => pool.end() }
    },
    sql as never,
  ),
)

it("gives the adapter's own import of drizzle-orm the lowest version too", async () => {
  expect((await import('drizzle-orm')).sql).toBe(sql)
})
