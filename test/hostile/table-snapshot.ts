import { sql, type Kysely } from 'kysely'

/**
 * Row count and checksum of every table of the key schema and the app's schema: equal before
 * and after a refused request means the request changed no stored row. The checksum covers each
 * row version's physical address and inserting transaction (ctid, xmin): any insert, update or
 * delete changes it, without reading (and detoasting) a 5 MB value a request may have stored.
 */
export async function snapshotTables(db: Kysely<any>, schemas: string[]): Promise<Record<string, string>> {
  const { rows: tables } = await sql<{ name: string }>`
    select format('%I.%I', schemaname, tablename) as name from pg_tables
     where schemaname = any(${schemas}) and tablename <> 'schema_migrations' order by 1`.execute(db)
  const snapshot: Record<string, string> = {}
  for (const { name } of tables) {
    const { rows } = await sql<{ summary: string }>`
      select count(*) || ':' || coalesce(md5(string_agg(t.ctid::text || t.xmin::text, '|' order by t.ctid)), '-') as summary from ${sql.raw(name)} t`.execute(db)
    snapshot[name] = rows[0]!.summary
  }
  return snapshot
}

/** The tables whose rows differ, as `table: before -> after`. */
export function changedTables(before: Record<string, string>, after: Record<string, string>): string[] {
  return Object.keys({ ...before, ...after })
    .filter((name) => before[name] !== after[name])
    .map((name) => `${name}: ${before[name] ?? 'absent'} -> ${after[name] ?? 'absent'}`)
}
