import { drizzle } from 'drizzle-orm/node-postgres'
import pg from 'pg'
import { runDataLayerContract } from './contract.ts'
import { drizzleLayer } from './drizzle-layer.ts'

runDataLayerContract(
  drizzleLayer('drizzle, node-postgres driver (pinned)', (url, max) => {
    const pool = new pg.Pool({ connectionString: url, max })
    return { db: drizzle(pool), close: () => pool.end() }
  }),
)
