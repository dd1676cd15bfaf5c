// The library's SQL as data: text with $1…$n placeholders and the values that fill them. Every
// data layer runs these through its SqlSession; none of them needs the library's query builder.
import { createHash } from 'node:crypto'
import { quoteIdentifier } from '../store/schema-name.ts'

/**
 * What every parameter of the library's statements is. Each placeholder in the library's SQL
 * carries an explicit cast (`$1::uuid`, `$2::int`), so a layer may send any of these as text or as
 * its own natural type: the server converts. Arrays travel as PostgreSQL array literals (text).
 */
export type StatementValue = string | number | boolean | null | Buffer

/** One statement for {@link SqlSession.run}. */
export interface Statement {
  /** SQL with `$1`…`$n` placeholders. */
  readonly text: string
  readonly values: readonly StatementValue[]
  /**
   * Set on the library's hot statements: a name unique to this text, under which a layer that
   * can may prepare it once per connection. Only statements with no plan choice carry one (a
   * function call, a one-row INSERT … VALUES), so a cached generic plan never turns into a scan.
   */
  readonly name?: string
  /**
   * For a layer that batches: `'begin'` marks the first statement of its transaction (it may
   * travel in BEGIN's message); `'commit'` marks a store no savepoint waits for (it may wait to
   * travel in the COMMIT's message, its failure then reported through {@link deferredError}).
   */
  readonly travelsWith?: 'begin' | 'commit'
  /** How a `'commit'` statement's failure is reported when it surfaces at a later statement. */
  readonly deferredError?: (error: unknown) => Error
  /**
   * Set on a file of `sql/` (a migration, the grants): several statements, no values, and no rows
   * read. A layer runs it as one simple query (no prepared statement can hold several), and
   * may resolve with no rows.
   */
  readonly script?: true
}

/** A piece of SQL with its values, composed by the {@link sql} tag. */
export class SqlFragment {
  readonly parts: readonly string[]
  readonly values: readonly (StatementValue | SqlFragment)[]
  constructor(parts: readonly string[], values: readonly (StatementValue | SqlFragment)[]) {
    this.parts = parts
    this.values = values
  }

  /** The fragment as a statement: its values numbered `$1`…`$n` in order. */
  toStatement(): Statement {
    const values: StatementValue[] = []
    const text = render(this, values)
    return { text, values }
  }
}

function render(fragment: SqlFragment, values: StatementValue[]): string {
  let text = fragment.parts[0]!
  fragment.values.forEach((value, i) => {
    if (value instanceof SqlFragment) text += render(value, values)
    else {
      values.push(value)
      text += `$${values.length}`
    }
    text += fragment.parts[i + 1]!
  })
  return text
}

/**
 * Tags SQL: each `${value}` becomes a placeholder (give it a cast in the SQL), each `${fragment}`
 * is inlined.
 */
export function sql(strings: TemplateStringsArray, ...values: (StatementValue | SqlFragment)[]): SqlFragment {
  return new SqlFragment([...strings], values)
}

/** A double-quoted identifier, `schema.table` when given two parts. */
sql.id = (...names: string[]): SqlFragment => new SqlFragment([names.map(quoteIdentifier).join('.')], [])

/** Fragments joined by `separator` (default `, `). */
sql.join = (fragments: readonly SqlFragment[], separator: SqlFragment = sql`, `): SqlFragment => {
  if (fragments.length === 0) return sql``
  const parts = ['']
  const values: SqlFragment[] = []
  fragments.forEach((fragment, i) => {
    if (i > 0) {
      values.push(separator)
      parts.push('')
    }
    values.push(fragment)
    parts.push('')
  })
  return new SqlFragment(parts, values)
}

/** Strings as one PostgreSQL array literal, for a `$n::text[]` (or `::tid[]`, `::uuid[]`) placeholder. */
export function arrayLiteral(items: readonly string[]): string {
  return `{${items.map((item) => `"${item.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`).join(',')}}`
}

/** The name a hot statement is prepared under: made from its text, so two texts never share one. */
export function preparedName(label: string, text: string): string {
  return `pg_idempotency_${label}_${createHash('sha256').update(text).digest('hex').slice(0, 16)}`
}
