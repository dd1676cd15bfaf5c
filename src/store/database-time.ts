// Timestamps as the library reads them: milliseconds since the epoch, as text the SQL made itself,
// so no data layer's type parser (Drizzle's strings, a pool's own timestamptz parser) changes them.
import { SqlFragment } from '../data/statement.ts'

/** SQL text for `column` (a timestamptz) as epoch milliseconds, truncated as node-postgres truncates. */
export function epochMillisSql(column: string): string {
  return `(extract(epoch from date_trunc('milliseconds', ${column})) * 1000)::int8::text`
}

/**
 * {@link epochMillisSql} as a fragment of the `sql` tag, named `as` (by default the column's name
 * without underscores: one lower-case word, which no column-name transform of a data layer renames).
 */
export function epochMillis(column: string, as = column.replaceAll('_', '')): SqlFragment {
  return new SqlFragment([`${epochMillisSql(column)} as ${as}`], [])
}

/** The Date an {@link epochMillisSql} column holds. */
export function dateOf(text: string): Date {
  return new Date(Number(text))
}

/** {@link dateOf}, for a nullable column. */
export function dateOrNull(text: string | null): Date | null {
  return text === null ? null : dateOf(text)
}
