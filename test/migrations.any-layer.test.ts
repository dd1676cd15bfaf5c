// migrate() and grantAccess() through each data layer's real adapter: the numbered SQL files (several
// statements each, psql-runnable as they are) applied on a fresh schema build what kysely builds,
// and a second run applies nothing.
import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { grantAccess, migrate } from '../src/index.ts'
import { loadMigrations } from '../src/migrations/sql-files.ts'
import type { OpenLayer } from './data-layers/layer-under-test.ts'
import { realLayers } from './data-layers/real-layers.ts'
import { describeSchema } from './support/describe-schema.ts'
import { useTestDatabase } from './support/test-database.ts'

const test = useTestDatabase({ migrated: false })
let reference: string

beforeAll(async () => {
  await migrate(test.db, { schema: 'by_kysely' })
  reference = (await describeSchema(test.db, 'by_kysely')).replaceAll('by_kysely', '<schema>')
})

describe.each(realLayers)('migrations on $name', (layer) => {
  let open: OpenLayer<any>
  const schema = `by_${layer.name.replace(/[^a-z]/gi, '').toLowerCase()}`
  beforeAll(async () => {
    open = await layer.open(test.url, 2)
  })
  afterAll(() => open?.close())

  it('applies every file on a fresh schema, the schema kysely builds; a second run applies nothing', async () => {
    const files = (await loadMigrations()).map((migration) => migration.name)
    const first = await migrate(open.database, { schema })
    expect(first.applied).toEqual(files)
    expect((await describeSchema(test.db, schema)).replaceAll(schema, '<schema>')).toBe(reference)
    expect(await migrate(open.database, { schema })).toEqual({ applied: [], version: first.version })
  })

  it('grants a role what the library needs', async () => {
    const role = `grantee_${randomUUID().slice(0, 8)}`
    await sql`create role ${sql.id(role)}`.execute(test.db)
    try {
      await grantAccess(open.database, { role, schema })
      const { rows } = await sql<{ granted: boolean }>`select has_table_privilege(${role}, ${`${schema}.idempotency_keys`}, 'insert') as granted`.execute(test.db)
      expect(rows).toEqual([{ granted: true }])
    } finally {
      await sql`drop owned by ${sql.id(role)}`.execute(test.db)
      await sql`drop role ${sql.id(role)}`.execute(test.db)
    }
  })
})
