// A process that follows docs/connection-errors.md and nothing more: it runs the page's first
// code block on its pool, opens idle connections and holds one checked out, says `ready`, and on
// `go` (after the test restarted the server) serves one idempotent request and says `ok`.
import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import { runTransaction, withIdempotency } from '../../src/index.ts'

const [databaseUrl] = process.argv.slice(2)
const page = readFileSync(new URL('../../docs/connection-errors.md', import.meta.url), 'utf8')
const advice = /```ts\n([\s\S]*?)```/.exec(page)![1]!
const pool = new pg.Pool({ connectionString: databaseUrl, max: 4 })
const log = { warn: (line: string) => process.stderr.write(`${line}\n`) }
new Function('pool', 'log', advice)(pool, log)
const db = new Kysely<any>({ dialect: new PostgresDialect({ pool }) })

const request = (key: string) => runTransaction(db, (tx) => withIdempotency(tx, { scope: 'advice', key }, async () => key))
// Three connections idle in the pool, one checked out and idle.
await Promise.all(['warm-1', 'warm-2', 'warm-3'].map(request))
const held = await pool.connect()
process.stdout.write('ready\n')

for await (const line of createInterface({ input: process.stdin })) {
  if (line !== 'go') continue
  held.release(true)
  const outcome = await request('after-restart')
  process.stdout.write(`ok ${JSON.stringify(outcome.value)}\n`)
  await db.destroy()
  process.exit(0)
}
