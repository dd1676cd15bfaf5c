import { randomUUID } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { sql, type Kysely } from 'kysely'
import { describe, expect, it } from 'vitest'
import { migrate, withIdempotency } from '../src/index.ts'
import { loadMigrations, renderSql } from '../src/migrations/sql-files.ts'
import { describeSchema } from './support/describe-schema.ts'
import { hasCommand, runCommand } from './support/run-command.ts'
import { useTestDatabase } from './support/test-database.ts'

// A database nothing has migrated, so every way of migrating starts from zero.
const database = useTestDatabase({ migrated: false })
const psqlAvailable = await hasCommand('psql')
// Every file of sql/, so a new migration needs no edit here.
const ALL_MIGRATIONS = await loadMigrations()
const ALL_FILES = ALL_MIGRATIONS.map((file) => file.name)
const ALL_VERSIONS = ALL_MIGRATIONS.map((file) => file.version)
const LATEST = ALL_VERSIONS.at(-1)!
const sqlFile = (name: string) => fileURLToPath(new URL(`../sql/${name}`, import.meta.url))

async function versionOf(db: Kysely<any>, schema: string): Promise<number[]> {
  const { rows } = await sql<{ version: number }>`select version from ${sql.id(schema, 'schema_migrations')} order by version`.execute(db)
  return rows.map((r) => r.version)
}

/** What kysely's Migrator recorded; kysely-ctl keeps its bookkeeping in our schema. */
async function kyselyRecorded(db: Kysely<any>, schema: string): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`select name from ${sql.id(schema, 'kysely_migration')} order by name`.execute(db)
  return rows.map((r) => r.name)
}

/** A first call and a replay through the migrated schema: it works, not just exists. */
async function expectWorking(db: Kysely<any>, schema: string) {
  const key = randomUUID()
  const run = () => db.transaction().execute((tx) => withIdempotency(tx, key, async () => ({ ok: schema }), { schema }))
  expect(await run()).toMatchObject({ replayed: false, value: { ok: schema } })
  expect(await run()).toMatchObject({ replayed: true, value: { ok: schema } })
}

describe('migrate()', () => {
  it('creates the schema, then does nothing when run again', async () => {
    const schema = 'idem_code'
    expect(await migrate(database.db, { schema })).toEqual({ applied: ALL_FILES, version: LATEST })
    expect(await migrate(database.db, { schema })).toEqual({ applied: [], version: LATEST })
    expect(await versionOf(database.db, schema)).toEqual(ALL_VERSIONS)
    await expectWorking(database.db, schema)
  })

  it('is safe to run from many callers at once: one applies, the others find it done', async () => {
    const schema = 'idem_concurrent'
    const results = await Promise.all(Array.from({ length: 6 }, () => migrate(database.db, { schema })))
    // Each file is applied once, by whichever caller got there first.
    expect(results.flatMap((r) => r.applied).sort()).toEqual(ALL_FILES)
    await expectWorking(database.db, schema)
  })

  it('accepts a schema name that needs quoting, and refuses an impossible one', async () => {
    const schema = 'Idem "quoted"; drop table x'
    await migrate(database.db, { schema })
    await expectWorking(database.db, schema)
    await expect(migrate(database.db, { schema: 'x'.repeat(64) })).rejects.toMatchObject({ code: 'IDEMPOTENCY_USAGE' })
  })
})

describe.skipIf(!psqlAvailable)('psql', () => {
  it('runs the files unchanged, and migrate() then finds nothing to do', async () => {
    const schema = 'idem_psql'
    for (const file of ALL_FILES) {
      const { stderr } = await runCommand('psql', [database.url, '-X', '-q', '-v', `schema=${schema}`, '-f', sqlFile(`${file}.sql`)])
      expect(stderr).toBe('')
    }
    expect(await migrate(database.db, { schema })).toEqual({ applied: [], version: LATEST })
    await expectWorking(database.db, schema)
  })

  it('defaults to the idempotency schema and can be run twice', async () => {
    for (let i = 0; i < 2; i++) {
      for (const file of ALL_FILES) await runCommand('psql', [database.url, '-X', '-q', '-f', sqlFile(`${file}.sql`)])
    }
    expect(await versionOf(database.db, 'idempotency')).toEqual(ALL_VERSIONS)
    await expectWorking(database.db, 'idempotency')
  })
})

describe('kysely-ctl', () => {
  it('applies the same files through kysely.config.ts, and skips what psql or migrate() did', async () => {
    const schema = 'idem_kysely'
    const env = { DATABASE_URL: database.url, IDEMPOTENCY_SCHEMA: schema }
    await runCommand('npx', ['kysely', 'migrate:latest'], env)
    expect(await kyselyRecorded(database.db, schema)).toEqual(ALL_FILES.map((f) => `pg-idempotency/${f}`))
    expect(await versionOf(database.db, schema)).toEqual(ALL_VERSIONS)
    await expectWorking(database.db, schema)

    // A schema migrate() already made: kysely records the file, and its up() applies nothing twice.
    await migrate(database.db, { schema: 'idem_mixed' })
    const before = await sql<{ applied_at: Date }>`select applied_at from idem_mixed.schema_migrations`.execute(database.db)
    await runCommand('npx', ['kysely', 'migrate:latest'], { DATABASE_URL: database.url, IDEMPOTENCY_SCHEMA: 'idem_mixed' })
    expect(await kyselyRecorded(database.db, 'idem_mixed')).toEqual(ALL_FILES.map((f) => `pg-idempotency/${f}`))
    const after = await sql<{ applied_at: Date }>`select applied_at from idem_mixed.schema_migrations`.execute(database.db)
    expect(after.rows).toEqual(before.rows)
    await expectWorking(database.db, 'idem_mixed')
  })
})

describe('upgrading', () => {
  it('0004 keeps the stored keys, and the same bounds hold as domain checks', async () => {
    const schema = 'idem_upgrade'
    const files = await loadMigrations()
    for (const file of files.filter((f) => f.version < 4)) {
      await database.db.transaction().execute((tx) => sql.raw(renderSql(file.text, { schema })).execute(tx))
    }
    const key = randomUUID()
    const run = () => database.db.transaction().execute((tx) => withIdempotency(tx, key, async () => ({ stored: 'before 0004' }), { schema }))
    expect(await run()).toMatchObject({ replayed: false })

    expect(await migrate(database.db, { schema })).toEqual({ applied: ALL_FILES.filter((name) => name >= '0004'), version: LATEST })
    expect(await run()).toMatchObject({ replayed: true, value: { stored: 'before 0004' } })
    const insert = (scope: string, key: string, fingerprint: Buffer, status: string) =>
      sql`insert into ${sql.id(schema, 'idempotency_keys')} (scope, key, fingerprint, status, response, completed_at, expires_at)
          values (${scope}, ${key}, ${fingerprint}, ${status}, '{}', now(), now())`.execute(database.db)
    const sha = Buffer.alloc(32)
    for (const [scope, badKey, fingerprint, status] of [
      ['', 'k', sha, 'completed'],
      ['s'.repeat(513), 'k', sha, 'completed'],
      ['s', '', sha, 'completed'],
      ['s', 'k'.repeat(256), sha, 'completed'],
      ['s', 'k', Buffer.alloc(31), 'completed'],
      ['s', 'k', sha, 'done'],
    ] as const) {
      await expect(insert(scope, badKey, fingerprint, status)).rejects.toMatchObject({ code: '23514' })
    }
    await insert('s'.repeat(512), 'k'.repeat(255), sha, 'failed')
  })
})

describe('upgrading to 0005', () => {
  it("keeps the deletion records and drops the client's identifier from them", async () => {
    const schema = 'idem_upgrade_5'
    for (const file of (await loadMigrations()).filter((f) => f.version < 5)) {
      await database.db.transaction().execute((tx) => sql.raw(renderSql(file.text, { schema })).execute(tx))
    }
    const customerId = randomUUID()
    await sql`insert into ${sql.id(schema, 'customer_deletions')} (customer_id, client_id, idempotent_identifier, state)
              values (${customerId}::uuid, 'client-a', 'user-123', 'done')`.execute(database.db)
    expect(await migrate(database.db, { schema })).toEqual({ applied: ALL_FILES.filter((name) => name >= '0005'), version: LATEST })
    const { rows } = await sql<{ row: string }>`select d::text as row from ${sql.id(schema, 'customer_deletions')} d`.execute(database.db)
    expect(rows).toHaveLength(1)
    expect(rows[0]!.row).toContain(customerId)
    expect(rows[0]!.row).not.toContain('user-123')
    // Run again by hand (psql would): nothing changes, nothing fails.
    const file = (await loadMigrations()).find((f) => f.version === 5)!
    await database.db.transaction().execute((tx) => sql.raw(renderSql(file.text, { schema })).execute(tx))
  })
})

describe('schema snapshot', () => {
  it('matches the committed picture of the migrated schema (update it on purpose with vitest -u)', async () => {
    await migrate(database.db, { schema: 'idem_snapshot' })
    await expect(await describeSchema(database.db, 'idem_snapshot')).toMatchFileSnapshot('./snapshots/schema.txt')
  })
})
