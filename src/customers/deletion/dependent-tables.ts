import type { SqlSession } from '../../data/sql-session.ts'
import { arrayLiteral, sql, type SqlFragment } from '../../data/statement.ts'
import { DEFAULT_SCHEMA } from '../../store/schema-name.ts'

/** A table without a foreign key to the customers table that still holds customers' rows. */
export interface RegisteredCustomerTable {
  table: string
  /** Default `'public'`. */
  schema?: string
  /** The column that holds the customer id (a uuid). */
  column: string
}

export type RowLock = 'wait' | 'skip locked' | 'none'

function lockClause(lock: RowLock, of?: SqlFragment) {
  if (lock === 'none') return sql``
  const target = of ? sql` of ${of}` : sql``
  return lock === 'wait' ? sql`for update${target}` : sql`for update${target} skip locked`
}

/** One table to empty of a customer's rows, and how its rows lead to the customer. */
export interface DeletionTarget {
  /** `schema.table`, the key of the progress record. */
  label: string
  /** How many foreign keys lie between it and the customers table; deeper tables go first. */
  depth: number
  /**
   * For tables found through foreign keys: the `schema.table` that references the customers table
   * directly on the way (the root of the subtree the rows hang from).
   */
  branch: string | undefined
  /**
   * Up to `limit` of the customer's rows as (`toid`, `tid`): table oid and ctid, since a ctid alone
   * is not unique across the partitions of a partitioned table. Locked for the delete
   * (`'skip locked'` passes over rows another transaction holds), or not locked at all; with
   * `within` (`toid:tid` of rows of the branch table), only rows below those.
   */
  select(customerId: string, limit: number | null, lock: RowLock, within?: string[]): SqlFragment
  /**
   * Deletes every row of the customer by predicate, not by ctid: under READ COMMITTED a row
   * updated meanwhile is re-checked and deleted, where a ctid taken before the update would miss it.
   */
  deleteAll(customerId: string): SqlFragment
  /** The table itself, for the DELETE. */
  table: SqlFragment
}

interface ForeignKey {
  child_schema: string
  child_table: string
  child_oid: number
  child_columns: string[]
  parent_columns: string[]
}

interface Hop {
  schema: string
  table: string
  oid: number
  /** This table's columns ... */
  columns: string[]
  /** ... equal to these columns of the table one hop nearer the customers table. */
  parentColumns: string[]
}

/**
 * Every table that holds a customer's rows: found from the database itself (foreign keys that
 * point at the customers table, followed transitively), the tables registered by the
 * application, and the library's own key and outbox tables. Deepest first, so children go before parents.
 */
export async function deletionTargets(session: SqlSession, schema = DEFAULT_SCHEMA, registered: RegisteredCustomerTable[] = []): Promise<DeletionTarget[]> {
  const root = { schema, table: 'customers', oid: await tableOid(session, schema, 'customers') }
  const targets: DeletionTarget[] = []
  // Columns that reference customer_id directly through a foreign key: already a target.
  const direct = new Set<string>()
  // Breadth first along foreign keys; a table met again on its own path (a cycle) stops there.
  let frontier: Array<{ oid: number; path: Hop[] }> = [{ oid: root.oid, path: [] }]
  while (frontier.length > 0) {
    const next: typeof frontier = []
    for (const { oid, path } of frontier) {
      for (const fk of await foreignKeysTo(session, oid)) {
        if (fk.child_oid === root.oid || path.some((hop) => hop.oid === fk.child_oid)) continue
        const hop: Hop = { schema: fk.child_schema, table: fk.child_table, oid: fk.child_oid, columns: fk.child_columns, parentColumns: fk.parent_columns }
        const hops = [...path, hop]
        targets.push(foreignKeyTarget(root, hops))
        if (path.length === 0 && fk.child_columns.length === 1) direct.add(`${fk.child_schema}.${fk.child_table}.${fk.child_columns[0]}`)
        next.push({ oid: fk.child_oid, path: hops })
      }
    }
    frontier = next
  }
  const ownTables = [
    { schema, table: 'idempotency_keys', column: 'customer_id' },
    { schema, table: 'outbox_events', column: 'customer_id' },
  ]
  for (const table of [...ownTables, ...registered]) {
    const tableSchema = table.schema ?? 'public'
    if (direct.has(`${tableSchema}.${table.table}.${table.column}`)) continue
    targets.push(columnTarget(tableSchema, table.table, table.column))
  }
  return targets.sort((a, b) => b.depth - a.depth)
}

function foreignKeyTarget(root: { schema: string; table: string }, hops: Hop[]): DeletionTarget {
  const last = hops[hops.length - 1]!
  const alias = (i: number) => sql.id(`t${i}`)
  // t{n} is the target; each hop joins one table nearer the customers table, ending at c.
  const joins = hops
    .slice(0, -1)
    .map((hop, i) => ({ hop, i }))
    .reverse()
    .map(({ hop, i }) => {
      const child = hops[i + 1]!
      return sql`join ${sql.id(hop.schema, hop.table)} as ${alias(i)} on ${equalities(alias(i + 1), child.columns, alias(i), child.parentColumns)}`
    })
  const first = hops[0]!
  const target = alias(hops.length - 1)
  // For deleteAll: every table on the way as a USING item, the hops as WHERE conditions.
  const using = [...hops.slice(0, -1).map((hop, i) => sql`${sql.id(hop.schema, hop.table)} as ${alias(i)}`), sql`${sql.id(root.schema, root.table)} as c`]
  const links = [
    ...hops.slice(1).map((hop, j) => equalities(alias(j + 1), hop.columns, alias(j), hop.parentColumns)),
    equalities(alias(0), first.columns, sql.id('c'), first.parentColumns),
  ]
  return {
    label: `${last.schema}.${last.table}`,
    depth: hops.length,
    // By foreign key, not by table: a table with two keys to the customers table is two branches.
    branch: `${first.schema}.${first.table}(${first.columns.join(',')})`,
    table: sql`${sql.id(last.schema, last.table)}`,
    select: (customerId, limit, lock, within) => sql`
      select ${target}.tableoid::text as toid, ${target}.ctid::text as tid from ${sql.id(last.schema, last.table)} as ${target}
      ${sql.join(joins, sql` `)}
      join ${sql.id(root.schema, root.table)} as c on ${equalities(alias(0), first.columns, sql.id('c'), first.parentColumns)}
      where c.customer_id = ${customerId}::uuid
      ${within === undefined ? sql`` : withinChunk(alias(0), within)}
      ${limit === null ? sql`` : sql`limit ${limit}::int`}
      ${lockClause(lock, target)}`,
    deleteAll: (customerId) => sql`
      delete from ${sql.id(last.schema, last.table)} as ${target} using ${sql.join(using)}
      where ${sql.join(links, sql` and `)} and c.customer_id = ${customerId}::uuid`,
  }
}

/**
 * Rows of the branch table `t0` in `within` (`toid:tid`). The ctid condition lets the planner start
 * from those rows (a TID scan) and walk down the foreign key indexes; the text match alone cannot
 * be looked up, so the planner walked the whole branch instead, slower the bigger the customer. The
 * text match stays for partitioned tables, where one ctid can occur in two partitions.
 */
function withinChunk(t0: SqlFragment, within: string[]) {
  const tids = within.map((row) => row.slice(row.indexOf(':') + 1))
  return sql`and ${t0}.ctid = any(${arrayLiteral(tids)}::tid[]) and (${t0}.tableoid::text || ':' || ${t0}.ctid::text) = any(${arrayLiteral(within)}::text[])`
}

function columnTarget(schema: string, table: string, column: string): DeletionTarget {
  return {
    label: `${schema}.${table}`,
    depth: 1,
    branch: undefined,
    table: sql`${sql.id(schema, table)}`,
    select: (customerId, limit, lock) => sql`
      select tableoid::text as toid, ctid::text as tid from ${sql.id(schema, table)} where ${sql.id(column)} = ${customerId}::uuid
      ${limit === null ? sql`` : sql`limit ${limit}::int`}
      ${lockClause(lock)}`,
    deleteAll: (customerId) => sql`delete from ${sql.id(schema, table)} where ${sql.id(column)} = ${customerId}::uuid`,
  }
}

function equalities(left: SqlFragment, leftColumns: string[], right: SqlFragment, rightColumns: string[]) {
  return sql.join(
    leftColumns.map((column, i) => sql`${left}.${sql.id(column)} = ${right}.${sql.id(rightColumns[i]!)}`),
    sql` and `,
  )
}

async function tableOid(session: SqlSession, schema: string, table: string): Promise<number> {
  const rows = await session.run(
    sql`select c.oid::text as oid from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = ${schema}::text and c.relname = ${table}::text`.toStatement(),
  )
  if (!rows[0]) throw new Error(`no table ${schema}.${table}: run migrate() first`)
  return Number(rows[0].oid)
}

/** A foreign key's row as selected: text only (the column lists as JSON arrays), one lower-case word per name. */
interface ForeignKeyText {
  childschema: string
  childtable: string
  childoid: string
  childcolumns: string
  parentcolumns: string
}

async function foreignKeysTo(session: SqlSession, parentOid: number): Promise<ForeignKey[]> {
  const rows = (await session.run(
    sql`
    select n.nspname::text as childschema, t.relname::text as childtable, t.oid::text as childoid,
           array_to_json(array(select a.attname::text from unnest(k.conkey) with ordinality as u(attnum, i)
                   join pg_attribute a on a.attrelid = k.conrelid and a.attnum = u.attnum order by u.i))::text as childcolumns,
           array_to_json(array(select a.attname::text from unnest(k.confkey) with ordinality as u(attnum, i)
                   join pg_attribute a on a.attrelid = k.confrelid and a.attnum = u.attnum order by u.i))::text as parentcolumns
      from pg_constraint k
      join pg_class t on t.oid = k.conrelid
      join pg_namespace n on n.oid = t.relnamespace
     -- conparentid = 0: a partitioned table's key once, not once more for each partition.
     where k.contype = 'f' and k.confrelid = ${parentOid}::oid and k.conparentid = 0
     order by n.nspname, t.relname, k.conname`.toStatement(),
  )) as unknown as ForeignKeyText[]
  return rows.map((row) => ({
    child_schema: row.childschema,
    child_table: row.childtable,
    child_oid: Number(row.childoid),
    child_columns: JSON.parse(row.childcolumns) as string[],
    parent_columns: JSON.parse(row.parentcolumns) as string[],
  }))
}
