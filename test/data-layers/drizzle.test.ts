import { drizzle } from 'drizzle-orm/node-postgres'
import pg from 'pg'
import { runDataLayerContract } from './contract.ts'
import { drizzleLayer } from './drizzle-layer.ts'

runDataLayerContract(
  drizzleLayer('drizzle, node-postgres driver (pinned)', (url, max) => {
    const pool = new pg.Pool({ connectionString: url, max })
    // node-postgres's advice for a pool: hear a client's errors (a connection lost between queries).
    pool.on('connect', (client) => client.on('error', () => {}))
    return { db: drizzle(pool), close: () => pool.end() }
  }),
)
