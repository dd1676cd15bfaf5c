import type { Kysely } from 'kysely'
import { afterAll, beforeAll, inject } from 'vitest'
import { connect, createDatabase, dropDatabase, uniqueDatabaseName, withDatabase } from '../../tools/databases.ts'

export interface TestDatabase<DB> {
  /** This file's own database, a copy of the migrated template. */
  readonly url: string
  readonly name: string
  readonly db: Kysely<DB>
  /** An admin connection string to the server, for creating roles and databases. */
  readonly adminUrl: string
}

/**
 * Gives the calling test file a fresh database copied from the migrated template, and drops it
 * when the file ends. Call at the top level of the file.
 */
export function useTestDatabase<DB = any>(options: { maxConnections?: number; migrated?: boolean } = {}): TestDatabase<DB> {
  const state = { url: '', name: '', db: undefined as unknown as Kysely<DB>, adminUrl: '' }
  beforeAll(async () => {
    state.adminUrl = inject('pgUrl')
    state.name = uniqueDatabaseName('pgidem_test')
    await createDatabase(state.adminUrl, state.name, options.migrated === false ? undefined : inject('pgTemplate'))
    state.url = withDatabase(state.adminUrl, state.name)
    state.db = connect<DB>(state.url, options.maxConnections ?? 10)
  })
  afterAll(async () => {
    await state.db?.destroy()
    if (state.name) await dropDatabase(state.adminUrl, state.name)
  })
  return state
}
