import { IdempotencyUsageError } from '../errors.ts'

/** The schema the migrations create by default. */
export const DEFAULT_SCHEMA = 'idempotency'

/**
 * The one place a name becomes SQL: a double-quoted identifier. Every value in the
 * library's statements is a bound parameter; the schema name is the only identifier that varies.
 */
export function quoteSchema(schema: string): string {
  if (typeof schema !== 'string' || Buffer.byteLength(schema) > 63) {
    throw new IdempotencyUsageError(`The schema name must be 1 to 63 bytes; got ${JSON.stringify(schema)}.`)
  }
  return quoteIdentifier(schema)
}

/** A role or other name as a double-quoted identifier (PostgreSQL's own escaping). */
export function quoteIdentifier(name: string): string {
  if (typeof name !== 'string' || name.length === 0 || name.includes('\u0000')) {
    throw new IdempotencyUsageError(`A SQL identifier must be a non-empty string without NUL characters; got ${JSON.stringify(name)}.`)
  }
  return `"${name.replaceAll('"', '""')}"`
}

/** A value as a standard-conforming string literal, for the psql-style `:'var'` placeholders only. */
export function quoteLiteral(value: string): string {
  if (value.includes('\u0000')) throw new IdempotencyUsageError('A SQL literal cannot contain a NUL character.')
  return `'${value.replaceAll("'", "''")}'`
}
