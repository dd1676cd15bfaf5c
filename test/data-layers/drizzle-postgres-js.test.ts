import { drizzle } from 'drizzle-orm/postgres-js'
import postgres from 'postgres'
import { runDataLayerContract } from './contract.ts'
import { drizzleLayer } from './drizzle-layer.ts'

runDataLayerContract(
  drizzleLayer('drizzle, postgres.js driver (pinned)', (url, max) => {
    const client = postgres(url, { max, onnotice: () => {} })
    return { db: drizzle(client), close: () => client.end() }
  },
  undefined,
  'postgres.js (under Drizzle) rejects sql.begin on close before fn settles, then crashes on its own timer'),
)
