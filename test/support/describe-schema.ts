import { sql, type Kysely } from 'kysely'

/**
 * A plain-text picture of a schema from the catalogs: domains with their checks, tables with
 * columns, constraints and indexes, and functions with settings and bodies. Stable across PostgreSQL versions, unlike a
 * pg_dump, so one committed snapshot serves the embedded server and the machine's own.
 */
export async function describeSchema(db: Kysely<any>, schema: string): Promise<string> {
  const columns = await sql<{ table_name: string; line: string }>`
    select c.relname as table_name,
           format('  %s %s%s%s', a.attname, format_type(a.atttypid, a.atttypmod),
                  case when a.attnotnull then ' not null' else '' end,
                  coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')) as line
      from pg_class c
      join pg_namespace n on n.oid = c.relnamespace
      join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
      left join pg_attrdef d on d.adrelid = c.oid and d.adnum = a.attnum
     where n.nspname = ${schema} and c.relkind = 'r'
     order by c.relname, a.attnum`.execute(db)
  const constraints = await sql<{ table_name: string; line: string }>`
    select c.relname as table_name, format('  constraint %s %s', k.conname, pg_get_constraintdef(k.oid)) as line
      from pg_constraint k
      join pg_class c on c.oid = k.conrelid
      join pg_namespace n on n.oid = c.relnamespace
     where n.nspname = ${schema} and k.contype <> 'n'
     order by c.relname, k.conname`.execute(db)
  const indexes = await sql<{ table_name: string; line: string }>`
    select tablename as table_name, '  ' || indexdef as line from pg_indexes where schemaname = ${schema} order by tablename, indexname`.execute(db)
  const functions = await sql<{ line: string }>`
    select format(E'function %s(%s) returns %s\n  config %s\n%s', p.proname, pg_get_function_arguments(p.oid),
                  pg_get_function_result(p.oid), coalesce(array_to_string(p.proconfig, '; '), ''), p.prosrc) as line
      from pg_proc p join pg_namespace n on n.oid = p.pronamespace
     where n.nspname = ${schema}
     order by p.proname`.execute(db)
  const domains = await sql<{ line: string }>`
    select format(E'domain %s %s%s\n%s', t.typname, format_type(t.typbasetype, t.typtypmod),
                  coalesce(' collate ' || quote_ident(co.collname), ''),
                  string_agg(format('  constraint %s %s', k.conname, pg_get_constraintdef(k.oid)), E'\n' order by k.conname)) as line
      from pg_type t
      join pg_namespace n on n.oid = t.typnamespace
      left join pg_collation co on co.oid = t.typcollation and co.collname <> 'default'
      left join pg_constraint k on k.contypid = t.oid and k.contype <> 'n'
     where n.nspname = ${schema} and t.typtype = 'd'
     group by t.oid, t.typname, co.collname
     order by t.typname`.execute(db)
  const byTable = new Map<string, string[]>()
  for (const row of [...columns.rows, ...constraints.rows, ...indexes.rows]) {
    byTable.set(row.table_name, [...(byTable.get(row.table_name) ?? []), row.line])
  }
  const tables = [...byTable].map(([table, lines]) => `table ${table}\n${lines.join('\n')}`)
  return [...domains.rows.map((r) => r.line), ...tables, ...functions.rows.map((r) => r.line)].join('\n\n').replaceAll(schema, '<schema>') + '\n'
}
