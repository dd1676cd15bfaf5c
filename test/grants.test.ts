import { randomBytes, randomUUID } from 'node:crypto'
import { sql, type Kysely } from 'kysely'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { grantAccess, withIdempotency } from '../src/index.ts'
import { connect } from '../tools/databases.ts'
import { useTestDatabase } from './support/test-database.ts'

// The application connects as a role with only what sql/grants.sql gives it: no DDL.
const database = useTestDatabase()
const role = `pgidem_app_${randomBytes(4).toString('hex')}`
const password = randomBytes(12).toString('hex')
let app: Kysely<any>

beforeAll(async () => {
  await sql`create role ${sql.id(role)} login password ${sql.lit(password)}`.execute(database.db)
  await grantAccess(database.db, { role })
  const url = new URL(database.url)
  url.username = role
  url.password = password
  app = connect(url.toString(), 4)
})

afterAll(async () => {
  await app?.destroy()
  await sql`drop owned by ${sql.id(role)}`.execute(database.db)
  await sql`drop role if exists ${sql.id(role)}`.execute(database.db)
})

it('works end to end as a role that holds only the granted privileges', async () => {
  const key = randomUUID()
  const run = (isolation: 'read committed' | 'repeatable read' = 'read committed') =>
    app.transaction().setIsolationLevel(isolation).execute((tx) => withIdempotency(tx, { key, request: { n: 1 } }, async () => ({ ok: true })))
  expect(await run()).toMatchObject({ replayed: false })
  expect(await run()).toMatchObject({ replayed: true })
  // Expiry replaces the row (DELETE), REPEATABLE READ writes a placeholder and updates it (UPDATE).
  await sql`update idempotency.idempotency_keys set expires_at = now() - interval '1 second' where key = ${key}`.execute(database.db)
  expect(await run('repeatable read')).toMatchObject({ replayed: false })
  expect(await run('repeatable read')).toMatchObject({ replayed: true })
})

it('cannot change the schema', async () => {
  await expect(sql`create table idempotency.intruder (id int)`.execute(app)).rejects.toMatchObject({ code: '42501' })
  await expect(sql`alter table idempotency.idempotency_keys add column x int`.execute(app)).rejects.toMatchObject({ code: '42501' })
  await expect(sql`drop function idempotency.claim_idempotency_key(text, text, bytea, boolean, integer)`.execute(app)).rejects.toMatchObject({ code: '42501' })
})
