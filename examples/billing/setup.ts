// The billing database: the library's schema (keys, customers, the outbox) through Drizzle, then
// the service's own tables from tables.sql. Both are safe to run again.
import { readFile } from 'node:fs/promises'
import { sql } from 'drizzle-orm'
import type { NodePgDatabase } from 'drizzle-orm/node-postgres'
import { database, migrate } from '../../src/data/drizzle/index.ts'

export async function migrateBilling(db: NodePgDatabase): Promise<void> {
  await migrate(database(db))
  await db.execute(sql.raw(await readFile(new URL('./tables.sql', import.meta.url), 'utf8')))
}
