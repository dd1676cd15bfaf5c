import { randomBytes } from 'node:crypto'
import { sql, type Kysely } from 'kysely'
import { afterAll, beforeAll } from 'vitest'
import { grantAccess } from '../../src/index.ts'
import { connect } from '../../tools/databases.ts'
import type { TestDatabase } from './test-database.ts'

/**
 * A login role holding only what sql/grants.sql gives it, and a connection as that role: the
 * application's view of the schema. Call at the top level of the file, after useTestDatabase.
 */
export function useAppRole(database: TestDatabase<any>): { readonly role: string; readonly db: Kysely<any> } {
  const state = { role: `pgidem_app_${randomBytes(4).toString('hex')}`, db: undefined as unknown as Kysely<any> }
  const password = randomBytes(12).toString('hex')
  beforeAll(async () => {
    await sql`create role ${sql.id(state.role)} login password ${sql.lit(password)}`.execute(database.db)
    await grantAccess(database.db, { role: state.role })
    const url = new URL(database.url)
    url.username = state.role
    url.password = password
    state.db = connect(url.toString(), 4)
  })
  afterAll(async () => {
    await state.db?.destroy()
    await sql`drop owned by ${sql.id(state.role)}`.execute(database.db)
    await sql`drop role if exists ${sql.id(state.role)}`.execute(database.db)
  })
  return state
}
